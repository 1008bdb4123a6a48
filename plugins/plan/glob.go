package plan

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxPatternLen bounds a glob's length; patterns come from plugin processes.
const MaxPatternLen = 256

// Glob is a compiled name pattern (see the package documentation for its syntax).
type Glob struct {
	pattern string
	re      *regexp.Regexp
}

// CompileGlob compiles a pattern. Matching is by Go's regexp, linear in the name's
// length whatever the pattern, so hostile patterns cannot stall the host.
func CompileGlob(pattern string) (*Glob, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	if len(pattern) > MaxPatternLen {
		return nil, fmt.Errorf("pattern is %d bytes long, more than %d", len(pattern), MaxPatternLen)
	}
	var b strings.Builder
	b.WriteString(`^(?:`)
	inAlt := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '{':
			if inAlt {
				return nil, fmt.Errorf("pattern %q: nested '{' at offset %d", pattern, i)
			}
			inAlt = true
			b.WriteString(`(?:`)
		case '}':
			if !inAlt {
				return nil, fmt.Errorf("pattern %q: unmatched '}' at offset %d", pattern, i)
			}
			inAlt = false
			b.WriteString(`)`)
		case ',':
			if inAlt {
				b.WriteString(`|`)
			} else {
				b.WriteString(`,`)
			}
		default:
			if c < 0x20 || c >= 0x7f {
				return nil, fmt.Errorf("pattern %q: byte %#x at offset %d is not printable ASCII", pattern, c, i)
			}
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if inAlt {
		return nil, fmt.Errorf("pattern %q: unclosed '{'", pattern)
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	return &Glob{pattern: pattern, re: re}, nil
}

// Match reports whether name matches the whole pattern.
func (g *Glob) Match(name string) bool { return g.re.MatchString(name) }

// String returns the pattern's source.
func (g *Glob) String() string { return g.pattern }

// MatchGlob reports whether name matches pattern.
func MatchGlob(pattern, name string) (bool, error) {
	g, err := CompileGlob(pattern)
	if err != nil {
		return false, err
	}
	return g.Match(name), nil
}
