// Package expr is the small expression language in which a method plugin writes the
// edits it makes at a backbone's sites, for example
//
//	32 * matmul(lora.B, lora.A)
//	h + linear(relu(linear(layer_norm(h, ln.g, ln.b), down.w, down.b)), up.w, up.b)
//
// The language has numeric literals, identifiers (segments joined by dots, such as
// q.slow.a), the operators + - * / with the usual precedence, unary minus, parentheses
// and calls of a fixed set of builtins:
//
//	matmul(a, b)        matrix product; batched over a leading axis when 3-D
//	kron(a, b)          Kronecker product of matrices, or pairwise over stacked [n,p,q], [n,r,s]
//	kron_sum(a, b)      Σ_i a_i ⊗ b_i over stacked [n,p,q] and [n,r,s]: a [p·r, q·s] matrix
//	outer(a, b)         a bᵀ for vectors, or pairwise over stacked [n,p] and [n,q]
//	sum(x, axis)        sum over one axis, which is removed; negative axes count from the end
//	transpose(x)        swaps the last two axes
//	reshape(x, d, ...)  row-major reshape; at most one dimension may be -1
//	relu gelu quick_gelu silu tanh sigmoid (x)
//	layer_norm(x, gamma, beta [, eps])   over the last axis, eps defaults to 1e-5
//	linear(x, w, b)     x·wᵀ + b
//
// The sum axis, reshape dimensions and eps are constant expressions: literals and the
// integer constants a site provides (in, out, dim), combined with + - * /.
//
// Arithmetic broadcasts as NumPy does; a numeric literal is a rank-0 scalar.
//
// Parse turns text into an Expr, whose String method prints it back (what it prints
// parses to an equal tree). Infer computes an expression's shape without evaluating
// it; a dimension may be Any, the unknown number of rows of a site's activations, and
// the rules keep such a dimension in place so that the host may feed activations with
// any leading axes. Eval evaluates an expression generically over any value type
// through an Ops implementation: the host implements Ops over its autograd variables,
// the tests over float64 slices.
package expr
