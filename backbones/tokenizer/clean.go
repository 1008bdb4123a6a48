package tokenizer

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// clean is OpenAI's basic_clean followed by whitespace_clean and lower(), with
// ftfy.fix_text reduced to the NFC normalisation it ends with (ftfy is a heuristic
// mojibake repairer with no Go port; HF's CLIPTokenizer falls back the same way
// when it is missing). Each step mirrors the Python semantics it stands for, which
// differ from Go's defaults in the corners: html.unescape's numeric rules,
// str.isspace versus the regex module's \s, and str.lower's full case mapping.
func clean(text string) string {
	if !utf8.ValidString(text) {
		// A Python str cannot hold invalid UTF-8; the closest reading of such bytes
		// is the replacement character, which is what Python's decoders produce.
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = norm.NFC.String(text)
	text = unescapeHTML(unescapeHTML(text))
	text = strings.TrimFunc(text, isPySpace)
	// whitespace_clean: regex's \s is Unicode White_Space, which is unicode.IsSpace.
	var b strings.Builder
	b.Grow(len(text))
	inSpace := false
	for _, r := range text {
		if unicode.IsSpace(r) {
			if !inSpace {
				b.WriteByte(' ')
			}
			inSpace = true
			continue
		}
		inSpace = false
		b.WriteRune(r)
	}
	return pyLower(strings.TrimFunc(b.String(), isPySpace))
}

// isPySpace is Python's str.isspace, which str.strip uses: Unicode White_Space
// plus the information separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyLower is Python's str.lower: the simple lower-case mapping plus the two full
// mappings Python applies and Go's strings.ToLower does not — U+0130 becomes
// "i̇" (two code points) and a capital sigma at the end of a word becomes ς.
func pyLower(s string) string {
	if !strings.ContainsAny(s, "\u0130\u03a3") {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range runes {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(runes, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Unicode's Final_Sigma condition, as CPython evaluates it: a cased
// letter before the sigma and none after it, skipping case-ignorable characters.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !cased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && caseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !cased(runes[j])
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// caseIgnorable is Unicode's Case_Ignorable: marks, format characters, modifiers,
// and the Word_Break MidLetter, MidNumLet and Single_Quote characters.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019', '\u2024',
		'\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// unescapeHTML is Python's html.unescape. Named references go through Go's html
// package, which implements the same HTML5 table and longest-prefix rule; numeric
// ones are decoded here because Python drops the code points HTML forbids (&#1;)
// where Go keeps them.
func unescapeHTML(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		repl, n := charRef(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		b.WriteString(repl)
		s = s[n:]
	}
}

// charRef decodes the reference at the start of s ("&..."), returning its
// replacement and length, or n == 0 where Python's pattern
// &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) does not match.
func charRef(s string) (string, int) {
	if len(s) >= 2 && s[1] == '#' {
		base, start := 10, 2
		if len(s) >= 3 && (s[2] == 'x' || s[2] == 'X') {
			base, start = 16, 3
		}
		end := start
		num, overflow := 0, false
		for end < len(s) {
			d := digitVal(s[end], base)
			if d < 0 {
				break
			}
			if num = num*base + d; num > 0x10ffff {
				overflow = true
				num = 0x110000
			}
			end++
		}
		if end == start {
			return "", 0
		}
		if end < len(s) && s[end] == ';' {
			end++
		}
		if overflow {
			return "\uFFFD", end
		}
		return numericRef(num), end
	}
	end := 1
	for runes := 0; end < len(s) && runes < 32; runes++ {
		r, size := utf8.DecodeRuneInString(s[end:])
		if r == '\t' || r == '\n' || r == '\f' || r == ' ' || r == '<' || r == '&' || r == '#' || r == ';' {
			break
		}
		end += size
	}
	if end == 1 {
		return "", 0
	}
	if end < len(s) && s[end] == ';' {
		end++
	}
	return html.UnescapeString(s[:end]), end
}

func digitVal(c byte, base int) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case base == 16 && c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case base == 16 && c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// windows1252 maps the C1 range as HTML5 (and Python) decode &#128;..&#159;;
// unassigned slots map to themselves.
var windows1252 = [32]rune{
	0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
	0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
}

func numericRef(num int) string {
	switch {
	case num == 0:
		return "\uFFFD"
	case num == 0x0d:
		return "\r"
	case num >= 0x80 && num <= 0x9f:
		return string(windows1252[num-0x80])
	case num >= 0xd800 && num <= 0xdfff, num > 0x10ffff:
		return "\uFFFD"
	case num >= 0x1 && num <= 0x8, num == 0xb, num >= 0xe && num <= 0x1f, num == 0x7f,
		num >= 0xfdd0 && num <= 0xfdef, num&0xfffe == 0xfffe:
		return "" // Python's _invalid_codepoints
	}
	return string(rune(num))
}
