package expr

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Expr is a node of a parsed expression.
type Expr interface {
	// Col is the 1-based column in the source where the node starts (for a binary
	// operation, the column of its operator).
	Col() int
	// String prints the expression with the fewest parentheses that keep its tree.
	String() string
	prec() int
}

// Number is a numeric literal.
type Number struct {
	Value  float64
	Column int
}

// Ident is a reference to a variable or constant, such as x, W, in or q.slow.a.
type Ident struct {
	Name   string
	Column int
}

// Unary is a negation.
type Unary struct {
	Op     byte // '-'
	X      Expr
	Column int
}

// Binary is an arithmetic operation.
type Binary struct {
	Op     byte // one of + - * /
	X, Y   Expr
	Column int
}

// Call is a call of a builtin.
type Call struct {
	Func   string
	Args   []Expr
	Column int
}

// Operator precedences; a higher one binds tighter.
const (
	precAdd = 1 + iota
	precMul
	precUnary
	precPrimary
)

func (n *Number) Col() int { return n.Column }
func (n *Ident) Col() int  { return n.Column }
func (n *Unary) Col() int  { return n.Column }
func (n *Binary) Col() int { return n.Column }
func (n *Call) Col() int   { return n.Column }

func (n *Number) prec() int {
	// A negative literal (only built by hand or by Subst) prints with a leading minus,
	// so it must be wrapped wherever a negation would be.
	if math.Signbit(n.Value) {
		return precUnary
	}
	return precPrimary
}
func (n *Ident) prec() int { return precPrimary }
func (n *Unary) prec() int { return precUnary }
func (n *Call) prec() int  { return precPrimary }
func (n *Binary) prec() int {
	if n.Op == '+' || n.Op == '-' {
		return precAdd
	}
	return precMul
}

func (n *Number) String() string { return strconv.FormatFloat(n.Value, 'g', -1, 64) }
func (n *Ident) String() string  { return n.Name }

func (n *Unary) String() string {
	// An operand of equal precedence (another negation) needs no parentheses: "--x"
	// lexes as two minus signs.
	return string(n.Op) + wrap(n.X, n.X.prec() < precUnary)
}

func (n *Binary) String() string {
	p := n.prec()
	// Operators associate to the left, so a right operand of the same precedence keeps
	// its parentheses: a - (b - c).
	return wrap(n.X, n.X.prec() < p) + " " + string(n.Op) + " " + wrap(n.Y, n.Y.prec() <= p)
}

func (n *Call) String() string {
	var b strings.Builder
	b.WriteString(n.Func)
	b.WriteByte('(')
	for i, a := range n.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteByte(')')
	return b.String()
}

func wrap(e Expr, paren bool) string {
	if paren {
		return "(" + e.String() + ")"
	}
	return e.String()
}

// Error is a problem with an expression at a column of its source.
type Error struct {
	Col int // 1-based; 0 when the problem has no single place
	Msg string
}

func (e *Error) Error() string {
	if e.Col <= 0 {
		return e.Msg
	}
	return fmt.Sprintf("column %d: %s", e.Col, e.Msg)
}

func errorf(col int, format string, args ...any) *Error {
	return &Error{Col: col, Msg: fmt.Sprintf(format, args...)}
}

// Idents returns the distinct identifiers e refers to, sorted.
func Idents(e Expr) []string {
	seen := map[string]bool{}
	walk(e, func(n Expr) {
		if id, ok := n.(*Ident); ok {
			seen[id.Name] = true
		}
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func walk(e Expr, f func(Expr)) {
	f(e)
	switch n := e.(type) {
	case *Unary:
		walk(n.X, f)
	case *Binary:
		walk(n.X, f)
		walk(n.Y, f)
	case *Call:
		for _, a := range n.Args {
			walk(a, f)
		}
	}
}

// Subst returns a copy of e in which every identifier named in consts is replaced by
// its value. The host substitutes a site's constants (in, out, dim) before Eval, which
// binds only tensors.
func Subst(e Expr, consts map[string]float64) Expr {
	switch n := e.(type) {
	case *Number:
		c := *n
		return &c
	case *Ident:
		if v, ok := consts[n.Name]; ok {
			return &Number{Value: v, Column: n.Column}
		}
		c := *n
		return &c
	case *Unary:
		return &Unary{Op: n.Op, X: Subst(n.X, consts), Column: n.Column}
	case *Binary:
		return &Binary{Op: n.Op, X: Subst(n.X, consts), Y: Subst(n.Y, consts), Column: n.Column}
	case *Call:
		args := make([]Expr, len(n.Args))
		for i, a := range n.Args {
			args[i] = Subst(a, consts)
		}
		return &Call{Func: n.Func, Args: args, Column: n.Column}
	}
	panic(fmt.Sprintf("expr: unknown node %T", e))
}
