package expr

import (
	"math"
	"strconv"
)

// Limits on untrusted input: expressions arrive from plugin processes.
const (
	MaxLen   = 4096 // bytes of source
	MaxDepth = 64   // nesting of calls, parentheses and operators
)

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokNum
	tokIdent
	tokOp // one of + - * / ( ) ,
)

type token struct {
	kind tokKind
	text string
	num  float64
	col  int
}

type parser struct {
	src   string
	pos   int
	tok   token
	depth int
}

// Parse parses src into an expression tree. Errors are *Error values that name the
// column at fault.
func Parse(src string) (Expr, error) {
	if len(src) > MaxLen {
		return nil, errorf(0, "expression is %d bytes long, more than the limit of %d", len(src), MaxLen)
	}
	p := &parser{src: src}
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return nil, errorf(1, "empty expression")
	}
	e, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, errorf(p.tok.col, "unexpected %s after a complete expression", p.tok.describe())
	}
	return e, nil
}

// MustParse is Parse for expressions written into programs; it panics on an error.
func MustParse(src string) Expr {
	e, err := Parse(src)
	if err != nil {
		panic("expr: " + err.Error() + " in " + strconv.Quote(src))
	}
	return e
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokNum:
		return "number " + t.text
	case tokIdent:
		return "identifier " + t.text
	}
	return strconv.Quote(t.text)
}

func isLetter(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func (p *parser) next() error {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
	start := p.pos
	col := start + 1
	if p.pos >= len(p.src) {
		p.tok = token{kind: tokEOF, col: col}
		return nil
	}
	c := p.src[p.pos]
	switch {
	case isLetter(c):
		for {
			for p.pos < len(p.src) && (isLetter(p.src[p.pos]) || isDigit(p.src[p.pos])) {
				p.pos++
			}
			if p.pos >= len(p.src) || p.src[p.pos] != '.' {
				break
			}
			p.pos++
			if p.pos >= len(p.src) || !(isLetter(p.src[p.pos]) || isDigit(p.src[p.pos])) {
				return errorf(p.pos, "identifier %q ends with '.'", p.src[start:p.pos])
			}
		}
		p.tok = token{kind: tokIdent, text: p.src[start:p.pos], col: col}
	case isDigit(c) || c == '.':
		for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
			p.pos++
		}
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			p.pos++
			for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
				p.pos++
			}
		}
		if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
			p.pos++
			if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
				p.pos++
			}
			digits := p.pos
			for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
				p.pos++
			}
			if p.pos == digits {
				return errorf(col, "malformed number %q: exponent has no digits", p.src[start:p.pos])
			}
		}
		text := p.src[start:p.pos]
		if text == "." {
			return errorf(col, "unexpected '.'")
		}
		if p.pos < len(p.src) && (isLetter(p.src[p.pos]) || p.src[p.pos] == '.') {
			return errorf(col, "malformed number %q", p.src[start:p.pos+1])
		}
		v, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(v, 0) {
			return errorf(col, "number %s is out of range", text)
		}
		p.tok = token{kind: tokNum, text: text, num: v, col: col}
	case c == '+' || c == '-' || c == '*' || c == '/' || c == '(' || c == ')' || c == ',':
		p.pos++
		p.tok = token{kind: tokOp, text: string(c), col: col}
	default:
		if c >= 0x80 {
			return errorf(col, "unexpected non-ASCII character")
		}
		return errorf(col, "unexpected character %q", string(c))
	}
	return nil
}

func (p *parser) isOp(s string) bool { return p.tok.kind == tokOp && p.tok.text == s }

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return errorf(p.tok.col, "expression nests deeper than %d levels", MaxDepth)
	}
	return nil
}

// parseSum parses terms joined by + and -.
func (p *parser) parseSum() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	x, err := p.parseProduct()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		op := p.tok
		if err := p.next(); err != nil {
			return nil, err
		}
		y, err := p.parseProduct()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: op.text[0], X: x, Y: y, Column: op.col}
	}
	return x, nil
}

// parseProduct parses unary expressions joined by * and /.
func (p *parser) parseProduct() (Expr, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") {
		op := p.tok
		if err := p.next(); err != nil {
			return nil, err
		}
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: op.text[0], X: x, Y: y, Column: op.col}
	}
	return x, nil
}

func (p *parser) parseUnary() (Expr, error) {
	if !p.isOp("-") {
		return p.parsePrimary()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	col := p.tok.col
	if err := p.next(); err != nil {
		return nil, err
	}
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	return &Unary{Op: '-', X: x, Column: col}, nil
}

func (p *parser) parsePrimary() (Expr, error) {
	t := p.tok
	switch {
	case t.kind == tokNum:
		if err := p.next(); err != nil {
			return nil, err
		}
		return &Number{Value: t.num, Column: t.col}, nil
	case t.kind == tokIdent:
		if err := p.next(); err != nil {
			return nil, err
		}
		if !p.isOp("(") {
			return &Ident{Name: t.text, Column: t.col}, nil
		}
		return p.parseCall(t)
	case p.isOp("("):
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseSum()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			return nil, errorf(p.tok.col, "expected ')' to close '(' at column %d, found %s", t.col, p.tok.describe())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return x, nil
	}
	return nil, errorf(t.col, "expected a number, identifier, call or '(', found %s", t.describe())
}

// parseCall parses the argument list of a call of name; the current token is '('.
func (p *parser) parseCall(name token) (Expr, error) {
	i, ok := builtinIndex[name.text]
	if !ok {
		return nil, errorf(name.col, "unknown function %s", name.text)
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if err := p.next(); err != nil {
		return nil, err
	}
	call := &Call{Func: name.text, Column: name.col}
	if !p.isOp(")") {
		for {
			a, err := p.parseSum()
			if err != nil {
				return nil, err
			}
			call.Args = append(call.Args, a)
			if p.isOp(",") {
				if err := p.next(); err != nil {
					return nil, err
				}
				continue
			}
			if p.isOp(")") {
				break
			}
			return nil, errorf(p.tok.col, "expected ',' or ')' in the arguments of %s, found %s", name.text, p.tok.describe())
		}
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	if err := language[i].check(name.text, len(call.Args), name.col); err != nil {
		return nil, err
	}
	return call, nil
}
