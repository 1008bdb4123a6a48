package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// clean is the text clean-up of HF's CLIPTokenizer, whitespace_clean(fix_text(text))
// followed by lower(), with ftfy.fix_text reduced to the NFC normalisation it ends
// with: ftfy is a heuristic repairer with no Go port, and NFC is the one step every
// reference shares (HF's ftfy-less fallback and its fast tokenizer apply it too).
// HTML entities stay as written, as in HF; OpenAI's SimpleTokenizer would decode
// them first. Each step mirrors the Python semantics it stands for, which differ
// from Go's defaults in the corners: str.isspace versus the regex module's \s, and
// str.lower's full case mapping.
func clean(text string) string {
	if !utf8.ValidString(text) {
		// A Python str cannot hold invalid UTF-8; the closest reading of such bytes
		// is the replacement character, which is what Python's decoders produce.
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = norm.NFC.String(text)
	// whitespace_clean: regex's \s is Unicode White_Space, which is unicode.IsSpace;
	// the strip after it is str.strip, which also takes U+001C..U+001F.
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
