// Package tokenizer is CLIP's byte-level BPE tokenizer, read from the vocab.json and
// merges.txt every HF CLIP checkpoint ships (or from tokenizer.json), producing the
// ids HF's CLIPTokenizer produces.
//
// Text is cleaned as HF's CLIPTokenizer does with ftfy reduced to NFC (whitespace
// runs collapsed, trimmed, lower-cased with Python's rules), split by CLIP's
// pre-tokenisation pattern, mapped byte-wise to GPT-2's printable alphabet, and
// merged pair by pair in rank order with "</w>" marking the end of each word.
//
// The references differ in corners, and this package takes HF's side, which is
// where the checkpoints and fixtures come from. Symbols missing from the vocabulary
// (impossible with CLIP's own vocabulary, which holds every byte) become the
// end-of-text id; OpenAI's code raises instead. HTML entities are kept as written;
// OpenAI's SimpleTokenizer decodes them. ftfy's other repairs (curly quotes, wide
// forms, mojibake) are not made. HF's ftfy-less fallback also pads CJK ideographs
// with spaces and drops control characters, which HF's fast tokenizer, OpenAI's
// tokenizer and this package do not.
//
// Pooling: CLIP's text tower reads the features at the end-of-text token. OpenAI
// checkpoints take the position of the highest id (EndID is the largest id in
// their vocabulary); HF's newer configs take the first EndID. Both are the position
// EOTPositions returns for sequences made by Tokenize, whatever the padding.
package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

const (
	startToken = "<|startoftext|>"
	endToken   = "<|endoftext|>"
	endOfWord  = "</w>"

	// maxMerges is how many merges OpenAI's and HF's slow tokenizers read
	// (49152 - 256 - 2): CLIP's vocabulary is 256 bytes, their </w> forms, one
	// token per merge and the two specials. Files with more lines are cut there.
	maxMerges = 49152 - 256 - 2

	// maxVocabID bounds token ids: a text tower's vocabulary is never larger
	// (backbones bounds vocab_size alike), and ids size tables downstream.
	maxVocabID = 1 << 22

	// maxFileSize bounds what Load reads; CLIP's vocab.json is 1.6 MB.
	maxFileSize = 64 << 20

	// maxCacheEntries bounds the per-word cache so unbounded distinct input cannot
	// grow memory without limit.
	maxCacheEntries = 1 << 16
)

// pattern is CLIP's pre-tokenisation regex. CLIP compiles it case-insensitively,
// which is moot after lower-casing. Go's \s is ASCII-only where Python's is not,
// but clean has already turned every Unicode space into ' '.
var pattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// Tokenizer maps text to CLIP token ids. It is safe for concurrent use.
type Tokenizer struct {
	encoder     map[string]int
	decoder     map[int]string
	ranks       map[[2]string]int
	byteEncoder [256]string
	byteDecoder map[rune]byte
	start, end  int
	vocabSize   int

	mu    sync.Mutex
	cache map[string][]int // byte-encoded word → ids
}

// LoadDir reads a HF model folder: vocab.json and merges.txt, or tokenizer.json
// when those two are absent.
func LoadDir(dir string) (*Tokenizer, error) {
	vocab, merges := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	_, errV := os.Stat(vocab)
	_, errM := os.Stat(merges)
	if errors.Is(errV, fs.ErrNotExist) && errors.Is(errM, fs.ErrNotExist) {
		tj := filepath.Join(dir, "tokenizer.json")
		if _, err := os.Stat(tj); err == nil {
			return LoadJSON(tj)
		}
		return nil, fmt.Errorf("tokenizer: %s has neither vocab.json and merges.txt nor tokenizer.json", dir)
	}
	return Load(vocab, merges)
}

// Load reads a vocabulary (token → id JSON object) and a merges file (one "a b"
// pair per line in rank order, after a "#version" line).
func Load(vocabPath, mergesPath string) (*Tokenizer, error) {
	raw, err := readLimited(vocabPath)
	if err != nil {
		return nil, err
	}
	var vocab map[string]int
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: want a JSON object of token ids: %v", vocabPath, err)
	}
	raw, err = readLimited(mergesPath)
	if err != nil {
		return nil, err
	}
	merges, err := parseMerges(mergesPath, raw)
	if err != nil {
		return nil, err
	}
	if len(merges) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: %s", mergesPath, errNoMerges)
	}
	return build(vocabPath, vocab, merges)
}

// LoadJSON reads the BPE model of a HF tokenizer.json (the fast tokenizer's file).
func LoadJSON(path string) (*Tokenizer, error) {
	raw, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Model struct {
			Type            string            `json:"type"`
			Vocab           map[string]int    `json:"vocab"`
			Merges          []json.RawMessage `json:"merges"`
			EndOfWordSuffix *string           `json:"end_of_word_suffix"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", path, err)
	}
	m := doc.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: %s: model type %q, want BPE", path, m.Type)
	}
	if m.EndOfWordSuffix == nil || *m.EndOfWordSuffix != endOfWord {
		return nil, fmt.Errorf("tokenizer: %s: model has no %q end-of-word suffix, so it is not CLIP's BPE", path, endOfWord)
	}
	merges := make([][2]string, 0, min(len(m.Merges), maxMerges))
	for i, rm := range m.Merges {
		if i == maxMerges {
			break
		}
		// Older files write "a b", newer ones ["a", "b"].
		var pair [2]string
		var s string
		if err := json.Unmarshal(rm, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("tokenizer: %s: merge %d %q is not two symbols", path, i, s)
			}
			pair = [2]string{a, b}
		} else if err := json.Unmarshal(rm, &pair); err != nil || pair[0] == "" || pair[1] == "" {
			return nil, fmt.Errorf("tokenizer: %s: merge %d %s is not two symbols", path, i, rm)
		}
		merges = append(merges, pair)
	}
	if len(merges) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: model.merges: %s", path, errNoMerges)
	}
	return build(path, m.Vocab, merges)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", path, err)
	}
	if len(raw) > maxFileSize {
		return nil, fmt.Errorf("tokenizer: %s is larger than %d bytes", path, maxFileSize)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("tokenizer: %s is not valid UTF-8", path)
	}
	return raw, nil
}

// parseMerges reads merges.txt the way the references do (the first line is a
// header, at most maxMerges follow, trailing blank lines are ignored) but rejects
// malformed lines, which they would silently never match.
func parseMerges(path string, raw []byte) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(bytes.TrimRight(raw, " \t\r\n")))
	sc.Buffer(nil, maxFileSize)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 && strings.HasPrefix(text, "#") {
			continue
		}
		if len(merges) == maxMerges {
			break
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("tokenizer: %s:%d: want two symbols separated by a space, got %q", path, line, text)
		}
		merges = append(merges, [2]string{fields[0], fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v", path, err)
	}
	return merges, nil
}

// errNoMerges is what an empty merges list is: without merges every word splits
// into single characters, a different tokenizer whose ids silently change every
// text embedding and zero-shot ranking (an empty merges.txt turned dog 92 % into
// cat 60 %).
const errNoMerges = "no merges (an empty or truncated file)"

func build(vocabPath string, vocab map[string]int, merges [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{
		encoder:     vocab,
		decoder:     make(map[int]string, len(vocab)),
		ranks:       make(map[[2]string]int, len(merges)),
		byteEncoder: bytesToUnicode(),
		byteDecoder: make(map[rune]byte, 256),
		cache:       make(map[string][]int),
	}
	for tok, id := range vocab {
		if id < 0 || id >= maxVocabID {
			return nil, fmt.Errorf("tokenizer: %s: token %q has id %d, outside [0, %d)", vocabPath, tok, id, maxVocabID)
		}
		if other, dup := t.decoder[id]; dup {
			a, b := min(tok, other), max(tok, other) // deterministic message
			return nil, fmt.Errorf("tokenizer: %s: tokens %q and %q share id %d", vocabPath, a, b, id)
		}
		t.decoder[id] = tok
		t.vocabSize = max(t.vocabSize, id+1)
	}
	var ok bool
	if t.start, ok = vocab[startToken]; !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s token", vocabPath, startToken)
	}
	if t.end, ok = vocab[endToken]; !ok {
		return nil, fmt.Errorf("tokenizer: %s has no %s token", vocabPath, endToken)
	}
	// A repeated pair takes its later rank, as Python's dict(zip(merges, ranks)) does.
	for i, m := range merges {
		t.ranks[m] = i
	}
	for b, s := range t.byteEncoder {
		r, _ := utf8.DecodeRuneInString(s)
		t.byteDecoder[r] = byte(b)
	}
	return t, nil
}

// bytesToUnicode is GPT-2's reversible map from bytes to printable characters:
// printable Latin-1 bytes map to themselves, the rest to code points from 256 up,
// so BPE never sees whitespace or control characters.
func bytesToUnicode() [256]string {
	var out [256]string
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff) {
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

// VocabSize is one more than the largest id: the rows a token embedding needs.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// Encode returns the ids of text without start or end tokens. The special tokens'
// text maps to their ids: written exactly, it is split off before any clean-up, as
// HF's added-token matching does (so "!<|endoftext|>" keeps its "!"); in another
// case it is caught by the pre-tokenisation pattern after lower-casing.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for text != "" {
		seg, id, rest := cutSpecial(text, t.start, t.end)
		ids = t.encodeSegment(ids, seg)
		if id >= 0 {
			ids = append(ids, id)
		}
		text = rest
	}
	return ids
}

// cutSpecial splits text at its first special token, returning the text before
// it, the token's id (-1 if there is none) and the text after it.
func cutSpecial(text string, start, end int) (before string, id int, after string) {
	i, j := strings.Index(text, startToken), strings.Index(text, endToken)
	switch {
	case i < 0 && j < 0:
		return text, -1, ""
	case j < 0 || (i >= 0 && i < j):
		return text[:i], start, text[i+len(startToken):]
	default:
		return text[:j], end, text[j+len(endToken):]
	}
}

// encodeSegment appends the ids of text that holds no exactly written special token.
func (t *Tokenizer) encodeSegment(ids []int, text string) []int {
	var b strings.Builder
	for _, word := range pattern.FindAllString(clean(text), -1) {
		switch word {
		case startToken:
			ids = append(ids, t.start)
			continue
		case endToken:
			ids = append(ids, t.end)
			continue
		}
		b.Reset()
		for _, c := range []byte(word) {
			b.WriteString(t.byteEncoder[c])
		}
		ids = append(ids, t.bpe(b.String())...)
	}
	return ids
}

// bpe returns the ids of one byte-encoded word. The result is shared with the
// cache and must not be modified.
func (t *Tokenizer) bpe(token string) []int {
	t.mu.Lock()
	ids, ok := t.cache[token]
	t.mu.Unlock()
	if ok {
		return ids
	}
	word := make([]string, 0, len(token))
	for _, r := range token {
		word = append(word, string(r))
	}
	if len(word) == 0 {
		return nil
	}
	word[len(word)-1] += endOfWord
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
		// Merge every occurrence of the pair, scanning left to right without overlap.
		merged := word[:0:0]
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
	ids = make([]int, len(word))
	for i, sym := range word {
		id, ok := t.encoder[sym]
		if !ok {
			id = t.end
		}
		ids[i] = id
	}
	t.mu.Lock()
	if len(t.cache) >= maxCacheEntries {
		clear(t.cache)
	}
	t.cache[token] = ids
	t.mu.Unlock()
	return ids
}

// Tokenize encodes each text as start + tokens + end, truncated to contextLength
// with the end token kept last (as OpenAI's tokenize(truncate=True) and HF's
// truncation do), then padded with pad to contextLength. HF pads CLIP with EndID;
// OpenAI and open_clip pad with 0.
func (t *Tokenizer) Tokenize(texts []string, contextLength int, pad int) ([][]int, error) {
	if contextLength < 2 {
		return nil, fmt.Errorf("tokenizer: context length %d leaves no room for the start and end tokens", contextLength)
	}
	out := make([][]int, len(texts))
	for i, text := range texts {
		ids := make([]int, 0, contextLength)
		ids = append(ids, t.start)
		enc := t.Encode(text)
		ids = append(ids, enc[:min(len(enc), contextLength-2)]...)
		ids = append(ids, t.end)
		for len(ids) < contextLength {
			ids = append(ids, pad)
		}
		out[i] = ids
	}
	return out, nil
}

// EOTPositions returns, for each sequence, the index of its first EndID after the
// start token (-1 if none): where CLIP pools text features. Positions up to and
// including it are HF's attention mask.
func (t *Tokenizer) EOTPositions(ids [][]int) []int {
	pos := make([]int, len(ids))
	for i, seq := range ids {
		pos[i] = -1
		for j := 1; j < len(seq); j++ {
			if seq[j] == t.end {
				pos[i] = j
				break
			}
		}
	}
	return pos
}

// Decode turns ids back into text: symbols joined, bytes restored, each "</w>" a
// space, as OpenAI's decode does (so the result ends in a space and is
// lower-cased). Invalid UTF-8 is replaced by U+FFFD.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	var sym strings.Builder
	for i, id := range ids {
		s, ok := t.decoder[id]
		if !ok {
			return "", fmt.Errorf("tokenizer: id %d at position %d is not in the vocabulary", id, i)
		}
		sym.WriteString(s)
	}
	var raw []byte
	for _, r := range sym.String() {
		if b, ok := t.byteDecoder[r]; ok {
			raw = append(raw, b)
		} else {
			raw = utf8.AppendRune(raw, r) // special tokens and "</w>" are plain ASCII
		}
	}
	return strings.ReplaceAll(strings.ToValidUTF8(string(raw), "\uFFFD"), endOfWord, " "), nil
}
