// Package tokenizer is CLIP's byte-level BPE tokenizer, read from the vocab.json and
// merges.txt every CLIP checkpoint ships, producing the ids Hugging Face's
// CLIPTokenizer produces (without ftfy, as the text tower's fixtures were made): text
// is lower-cased and its whitespace collapsed, split by CLIP's pre-tokenisation
// pattern, mapped byte-wise to GPT-2's printable alphabet, and merged pair by pair in
// rank order with "</w>" marking the end of each word.
package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode"
)

const (
	startToken = "<|startoftext|>"
	endToken   = "<|endoftext|>"
)

// pattern is CLIP's pre-tokenisation regex (case-insensitive, as CLIP compiles it).
var pattern = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// Tokenizer maps text to CLIP token ids. It is safe for concurrent use.
type Tokenizer struct {
	encoder     map[string]int
	ranks       map[[2]string]int
	byteEncoder [256]string
	start, end  int
	mu          sync.Mutex
	cache       map[string][]string
}

// LoadDir reads vocab.json and merges.txt from a model folder.
func LoadDir(dir string) (*Tokenizer, error) {
	return Load(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
}

// Load reads a vocabulary (token → id JSON) and a merges file (one "a b" pair per
// line in rank order, after an optional "#version" header).
func Load(vocabPath, mergesPath string) (*Tokenizer, error) {
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t := &Tokenizer{encoder: map[string]int{}, ranks: map[[2]string]int{}, cache: map[string][]string{}}
	if err := json.Unmarshal(raw, &t.encoder); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", vocabPath, err)
	}
	var ok bool
	if t.start, ok = t.encoder[startToken]; !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s token", vocabPath, startToken)
	}
	if t.end, ok = t.encoder[endToken]; !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s token", vocabPath, endToken)
	}
	f, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || (line == 1 && strings.HasPrefix(text, "#version")) {
			continue
		}
		parts := strings.Split(text, " ")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("tokenizer: %s:%d: want two symbols separated by one space, got %q", mergesPath, line, text)
		}
		pair := [2]string{parts[0], parts[1]}
		if _, dup := t.ranks[pair]; !dup {
			t.ranks[pair] = len(t.ranks)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", mergesPath, err)
	}
	t.byteEncoder = bytesToUnicode()
	return t, nil
}

// bytesToUnicode is GPT-2's reversible map from bytes to printable characters:
// printable Latin-1 bytes map to themselves, the others to code points from 256 up.
func bytesToUnicode() [256]string {
	var out [256]string
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// StartID is the id of <|startoftext|>.
func (t *Tokenizer) StartID() int { return t.start }

// EndID is the id of <|endoftext|>, also HF's padding and unknown token for CLIP.
func (t *Tokenizer) EndID() int { return t.end }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.encoder) }

// clean lower-cases and collapses whitespace, as CLIP's whitespace_clean (and HF's
// fallback basic tokenizer without accent stripping) do; control characters go too.
func clean(text string) string {
	text = strings.Map(func(r rune) rune {
		if r == 0 || r == 0xFFFD || (unicode.IsControl(r) && !unicode.IsSpace(r)) {
			return -1
		}
		return r
	}, text)
	return strings.ToLower(strings.Join(strings.Fields(text), " "))
}

// Encode returns the ids of text without start or end tokens.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for _, word := range pattern.FindAllString(clean(text), -1) {
		var b strings.Builder
		for _, c := range []byte(word) {
			b.WriteString(t.byteEncoder[c])
		}
		for _, sym := range t.bpe(b.String()) {
			id, ok := t.encoder[sym]
			if !ok {
				id = t.end // HF's unknown token for CLIP
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// bpe merges a word's symbols by rank until no ranked pair remains.
func (t *Tokenizer) bpe(token string) []string {
	t.mu.Lock()
	if out, ok := t.cache[token]; ok {
		t.mu.Unlock()
		return out
	}
	t.mu.Unlock()
	runes := []rune(token)
	word := make([]string, len(runes))
	for i, r := range runes {
		word[i] = string(r)
	}
	word[len(word)-1] += "</w>"
	for len(word) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(word); i++ {
			if r, ok := t.ranks[[2]string{word[i], word[i+1]}]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		first, second := word[best], word[best+1]
		// Merge every occurrence of the pair, left to right, as the reference does.
		merged := make([]string, 0, len(word))
		for i := 0; i < len(word); i++ {
			if i+1 < len(word) && word[i] == first && word[i+1] == second {
				merged = append(merged, first+second)
				i++
				continue
			}
			merged = append(merged, word[i])
		}
		word = merged
	}
	t.mu.Lock()
	t.cache[token] = word
	t.mu.Unlock()
	return word
}

// Tokenize encodes each text as start + tokens + end, truncated to contextLength
// with the end token kept last, and padded with pad to contextLength.
func (t *Tokenizer) Tokenize(texts []string, contextLength int, pad int) ([][]int, error) {
	if contextLength < 2 {
		return nil, fmt.Errorf("tokenizer: context length %d leaves no room for the start and end tokens", contextLength)
	}
	out := make([][]int, len(texts))
	for i, text := range texts {
		ids := append([]int{t.start}, t.Encode(text)...)
		if len(ids) > contextLength-1 {
			ids = ids[:contextLength-1]
		}
		ids = append(ids, t.end)
		for len(ids) < contextLength {
			ids = append(ids, pad)
		}
		out[i] = ids
	}
	return out, nil
}
