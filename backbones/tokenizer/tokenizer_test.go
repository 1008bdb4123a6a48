package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func load(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type hfFixture struct {
	Texts         []string `json:"texts"`
	InputIDs      [][]int  `json:"input_ids"`
	AttentionMask [][]int  `json:"attention_mask"`
}

func readFixture(t *testing.T) hfFixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/tokenized.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx hfFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Texts) != 5 || len(fx.InputIDs) != 5 || len(fx.AttentionMask) != 5 {
		t.Fatalf("fixture has %d texts, %d id rows, %d masks; want 5 each", len(fx.Texts), len(fx.InputIDs), len(fx.AttentionMask))
	}
	return fx
}

// TestMatchesHF compares with the ids transformers' CLIPTokenizer produced for the
// fixture's sentences (max_length 16, truncation, padding with its pad token,
// which is <|endoftext|>), and derives HF's attention mask from EOTPositions.
func TestMatchesHF(t *testing.T) {
	fx := readFixture(t)
	tok := load(t)
	got, err := tok.Tokenize(fx.Texts, 16, tok.EndID())
	if err != nil {
		t.Fatal(err)
	}
	eot := tok.EOTPositions(got)
	for i := range fx.Texts {
		if !slices.Equal(got[i], fx.InputIDs[i]) {
			t.Errorf("%q:\n got %v\nwant %v", fx.Texts[i], got[i], fx.InputIDs[i])
		}
		for j, m := range fx.AttentionMask[i] {
			if want := j <= eot[i]; (m == 1) != want {
				t.Errorf("%q: mask[%d] = %d but EOT is at %d", fx.Texts[i], j, m, eot[i])
			}
		}
	}
}

// TestReferenceCases checks each stage against gen_cases.py, a Python rendering
// of HF's tokenizer that uses Python's own str.lower, strip and the regex module.
func TestReferenceCases(t *testing.T) {
	raw, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text  string   `json:"text"`
		Clean string   `json:"clean"`
		Words []string `json:"words"`
		IDs   []int    `json:"ids"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("only %d reference cases", len(cases))
	}
	tok := load(t)
	for _, c := range cases {
		cl := clean(c.Text)
		if cl != c.Clean {
			t.Errorf("clean(%+q) = %+q, want %+q", c.Text, cl, c.Clean)
			continue
		}
		if words := pattern.FindAllString(cl, -1); !slices.Equal(words, c.Words) && len(words)+len(c.Words) > 0 {
			t.Errorf("words of %+q = %+q, want %+q", cl, words, c.Words)
		}
		if ids := tok.Encode(c.Text); !slices.Equal(ids, c.IDs) && len(ids)+len(c.IDs) > 0 {
			t.Errorf("Encode(%+q) = %v, want %v", c.Text, ids, c.IDs)
		}
	}
}

func TestHandChecked(t *testing.T) {
	tok := load(t)
	id := func(syms ...string) []int {
		var ids []int
		for _, s := range syms {
			v, ok := tok.encoder[s]
			if !ok {
				t.Fatalf("no symbol %q in the test vocabulary", s)
			}
			ids = append(ids, v)
		}
		return ids
	}
	unk := tok.EndID()
	tests := []struct {
		text string
		want []int
	}{
		{"PHOTO", id("photo</w>")},
		{"  a \t\n a ", id("a</w>", "a</w>")},
		// Digits are one pre-token each.
		{"42", id("4</w>", "2</w>")},
		// "it", "'s": the small vocabulary has no "'s" merge.
		{"it's", id("i", "t</w>", "'", "s</w>")},
		{"Photo!", id("photo</w>", "!</w>")},
		// Punctuation runs are one pre-token, merged by no rule here.
		{"?!.", id("?", "!", ".</w>")},
		// ph+ot -> phot, then "phot o</w>" only at the end: the first "photo" of
		// a run keeps a bare "o".
		{"photophoto", id("phot", "o", "photo</w>")},
		// "ca t" outranks "cat s</w>", so cats is cat + s</w> merged by rank 10.
		{"cats", id("cats</w>")},
		// Rank order: "p l" (13) before "a n" (14), then "pl an", then "plan e</w>".
		{"plane", id("plane</w>")},
		// Special tokens' text maps to their ids, whatever the case.
		{"<|endoftext|>", []int{unk}},
		{"<|StartOfText|>a", []int{tok.StartID(), id("a</w>")[0]}},
		// Written exactly, a special token is split off before the pattern runs, so
		// the punctuation before it stays its own word.
		{"!<|endoftext|>", []int{id("!</w>")[0], unk}},
		// é is two bytes, each an unknown symbol here: HF's unknown token per symbol.
		{"é", []int{unk, unk}},
		// A non-ASCII letter stays inside its word: "café" is one pre-token whose
		// last symbol (é's second byte) carries the </w>; "c a" still merges.
		{"Café", append(id("ca", "f"), unk, unk)},
		{"naïve7", slices.Concat(id("n", "a"), []int{unk, unk}, id("v", "e</w>", "7</w>"))},
		// HTML entities are text, as in HF: "&amp;" is "&", "amp", ";".
		{"cat&amp;dog", slices.Concat(id("cat</w>"), []int{unk}, id("a", "m", "p</w>"), []int{unk}, id("dog</w>"))},
		{"", nil},
	}
	for _, tc := range tests {
		if got := tok.Encode(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestTokenizeTruncateAndPad(t *testing.T) {
	tok := load(t)
	s, e := tok.StartID(), tok.EndID()
	const text = "a photo of a cat and a dog" // a photo of a cat and a dog: 8 tokens
	tests := []struct {
		ctx, pad int
		want     []int
	}{
		{2, 0, []int{s, e}},
		{3, 0, []int{s, 41, e}},
		{5, 0, []int{s, 41, 85, 86, e}},
		{10, 0, []int{s, 41, 85, 86, 41, 90, 99, 41, 94, e}},
		{11, 0, []int{s, 41, 85, 86, 41, 90, 99, 41, 94, e, 0}},
		{13, 7, []int{s, 41, 85, 86, 41, 90, 99, 41, 94, e, 7, 7, 7}},
	}
	for _, tt := range tests {
		got, err := tok.Tokenize([]string{text, ""}, tt.ctx, tt.pad)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0], tt.want) {
			t.Errorf("context %d pad %d: %v, want %v", tt.ctx, tt.pad, got[0], tt.want)
		}
		if len(got[1]) != tt.ctx || got[1][0] != s || got[1][1] != e {
			t.Errorf("empty text at context %d: %v", tt.ctx, got[1])
		}
		if pos := tok.EOTPositions(got); pos[0] != min(9, tt.ctx-1) || pos[1] != 1 {
			t.Errorf("context %d: EOTPositions = %v", tt.ctx, pos)
		}
	}
	for _, ctx := range []int{1, 0, -5} {
		if _, err := tok.Tokenize([]string{"a"}, ctx, 0); err == nil || !strings.Contains(err.Error(), fmt.Sprint(ctx)) {
			t.Errorf("context %d: error %v", ctx, err)
		}
	}
	if pos := tok.EOTPositions([][]int{{s, 41}, {}}); !slices.Equal(pos, []int{-1, -1}) {
		t.Errorf("EOTPositions without end token = %v", pos)
	}
}

func TestDecode(t *testing.T) {
	tok := load(t)
	// Encoding then decoding gives the cleaned words, each followed by a space.
	got, err := tok.Decode(tok.Encode("A  Photo of the DOG, 42 cats!"))
	if want := "a photo of the dog , 4 2 cats ! "; err != nil || got != want {
		t.Errorf("Decode(Encode) = %q, %v; want %q", got, err, want)
	}
	// A multi-byte character split over two symbols is put back together.
	e := tok.byteEncoder
	tok2 := &Tokenizer{decoder: map[int]string{0: e[0xc3], 1: e[0xa9] + endOfWord}, byteDecoder: tok.byteDecoder}
	if got, err := tok2.Decode([]int{0, 1}); err != nil || got != "é " {
		t.Errorf("Decode of é's bytes = %q, %v", got, err)
	}
	got, err = tok.Decode([]int{tok.StartID(), 85, 86, 41, 90, tok.EndID()})
	if want := "<|startoftext|>photo of a cat <|endoftext|>"; err != nil || got != want {
		t.Errorf("Decode = %q, %v; want %q", got, err, want)
	}
	if _, err := tok.Decode([]int{5, 9999}); err == nil || !strings.Contains(err.Error(), "id 9999 at position 1") {
		t.Errorf("Decode of unknown id: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	tok := load(t)
	if tok.StartID() != 100 || tok.EndID() != 101 || tok.VocabSize() != 102 {
		t.Errorf("StartID %d EndID %d VocabSize %d, want 100 101 102", tok.StartID(), tok.EndID(), tok.VocabSize())
	}
	if len(tok.ranks) != 18 {
		t.Errorf("%d merges, want 18", len(tok.ranks))
	}
}

func TestConcurrent(t *testing.T) {
	tok := load(t)
	want := tok.Encode("a plane and a dog, 42 cats")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if got := tok.Encode("a plane and a dog, 42 cats"); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("goroutine %d iteration %d: %v", g, i, got)
					return
				}
				tok.Encode(fmt.Sprintf("word%dx%d", g, i))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestCacheBounded(t *testing.T) {
	tok := load(t)
	for i := range maxCacheEntries + 10 {
		tok.bpe(fmt.Sprintf("w%d", i))
	}
	if n := len(tok.cache); n > maxCacheEntries {
		t.Errorf("cache holds %d entries, limit %d", n, maxCacheEntries)
	}
	if got := tok.Encode("cats"); !slices.Equal(got, []int{92}) {
		t.Errorf("Encode after cache reset = %v", got)
	}
}

func TestLoadJSON(t *testing.T) {
	vocabRaw, err := os.ReadFile("testdata/vocab.json")
	if err != nil {
		t.Fatal(err)
	}
	mergesRaw, err := os.ReadFile("testdata/merges.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mergesRaw)), "\n")[1:]
	var pairs [][2]string
	for _, l := range lines {
		a, b, _ := strings.Cut(l, " ")
		pairs = append(pairs, [2]string{a, b})
	}
	strMerges, _ := json.Marshal(lines)
	pairMerges, _ := json.Marshal(pairs)
	fx := readFixture(t)
	for name, merges := range map[string]string{"strings": string(strMerges), "pairs": string(pairMerges)} {
		dir := t.TempDir()
		doc := `{"version":"1.0","model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":` + string(vocabRaw) +
			`,"merges":` + merges + `}}`
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := tok.Tokenize(fx.Texts, 16, tok.EndID())
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if !slices.Equal(got[i], fx.InputIDs[i]) {
				t.Errorf("%s merges, %q: %v, want %v", name, fx.Texts[i], got[i], fx.InputIDs[i])
			}
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	vocab, merges := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const okVocab = `{"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}`
	cases := []struct {
		name, vocab, merges, want string
	}{
		{"truncated json", `{"a": 0`, "#version: 0.2\na b\n", "vocab.json: want a JSON object of token ids"},
		{"not an object", `["a"]`, "#version: 0.2\na b\n", "vocab.json: want a JSON object"},
		{"fractional id", `{"a": 0.5}`, "#version: 0.2\na b\n", "vocab.json: want a JSON object"},
		{"negative id", `{"a": -1, "<|startoftext|>": 1, "<|endoftext|>": 2}`, "#version: 0.2\na b\n", `token "a" has id -1, outside [0, 4194304)`},
		{"shared id", `{"a": 0, "b": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}`, "#version: 0.2\na b\n", `tokens "a" and "b" share id 0`},
		{"no start", `{"a": 0, "<|endoftext|>": 2}`, "#version: 0.2\na b\n", "no <|startoftext|> token"},
		{"no end", `{"a": 0, "<|startoftext|>": 1}`, "#version: 0.2\na b\n", "no <|endoftext|>"},
		{"three symbols", okVocab, "#version: 0.2\na b c\n", `merges.txt:2: want two symbols separated by a space, got "a b c"`},
		{"one symbol", okVocab, "#version: 0.2\na b\nab\n", `merges.txt:3: want two symbols`},
		{"blank line inside", okVocab, "#version: 0.2\na b\n\nb c\n", `merges.txt:3: want two symbols`},
		{"invalid utf8", okVocab, "#version: 0.2\n\xff \xfe\n", "merges.txt is not valid UTF-8"},
		// Accepted before, silently changing every tokenisation.
		{"empty merges", okVocab, "", "merges.txt: no merges"},
		{"header only", okVocab, "#version: 0.2\n\n", "merges.txt: no merges"},
		{"huge id", `{"a": 1000000000000, "<|startoftext|>": 1, "<|endoftext|>": 2}`, "#version: 0.2\na b\n", "id 1000000000000, outside"},
	}
	for _, c := range cases {
		write(vocab, c.vocab)
		write(merges, c.merges)
		if _, err := Load(vocab, merges); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	write(vocab, okVocab)
	write(merges, "#version: 0.2\na b\r\nb c\n\n\n")
	if _, err := Load(vocab, merges); err != nil {
		t.Errorf("CRLF merges and trailing blank lines: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "none.json"), merges); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing vocab: %v", err)
	}
	if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither vocab.json") {
		t.Errorf("empty folder: %v", err)
	}
	badJSON := []struct{ doc, want string }{
		{`{"model":{"type":"WordPiece"}}`, `model type "WordPiece", want BPE`},
		{`{"model":{"type":"BPE","vocab":{}}}`, `no "</w>" end-of-word suffix`},
		{`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":` + okVocab + `,"merges":["a"]}}`, `merge 0 "a" is not two symbols`},
		{`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":` + okVocab + `,"merges":[["a"]]}}`, `merge 0 ["a"] is not two symbols`},
		{`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":` + okVocab + `,"merges":[7]}}`, `merge 0 7 is not two symbols`},
		{`{"model":`, "tokenizer.json: unexpected end of JSON input"},
		{`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":` + okVocab + `,"merges":[]}}`, "model.merges: no merges"},
	}
	for _, c := range badJSON {
		p := filepath.Join(dir, "tokenizer.json")
		write(p, c.doc)
		if _, err := LoadJSON(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tokenizer.json %s: error %v, want %q", c.doc, err, c.want)
		}
	}
}

// TestMergeCap checks the references' limit of 48894 merges: a merge past it
// never applies.
func TestMergeCap(t *testing.T) {
	dir := t.TempDir()
	var m strings.Builder
	m.WriteString("#version: 0.2\n")
	for i := range maxMerges {
		fmt.Fprintf(&m, "x%d y\n", i) // filler that never matches
	}
	m.WriteString("a b\n")
	vocab := `{"a": 0, "b": 1, "b</w>": 2, "ab</w>": 3, "<|startoftext|>": 4, "<|endoftext|>": 5}`
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(vocab), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("ab"); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("Encode(ab) = %v, want [0 2]: merge %d must be ignored", got, maxMerges)
	}
}

// FuzzEncode checks that any text encodes to ids of the vocabulary and that
// Tokenize always yields contextLength ids with the end token where it belongs.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"a photo of a cat.", "&amp;#39;s", "İΣ", "\xff\xfe", "<|endoftext|>", "日本 🐱", "&#99999999999999999999;"} {
		f.Add(s)
	}
	tok := load(f)
	f.Fuzz(func(t *testing.T, text string) {
		ids := tok.Encode(text)
		if _, err := tok.Decode(ids); err != nil {
			t.Fatalf("Encode(%q) = %v, which does not decode: %v", text, ids, err)
		}
		out, err := tok.Tokenize([]string{text}, 8, 0)
		if err != nil || len(out[0]) != 8 || out[0][0] != tok.StartID() {
			t.Fatalf("Tokenize(%q) = %v, %v", text, out, err)
		}
		if want := min(len(ids)+1, 7); out[0][want] != tok.EndID() {
			t.Fatalf("Tokenize(%q) = %v: end token not at %d", text, out[0], want)
		}
	})
}
