package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMatchesHF compares with the ids transformers' CLIPTokenizer produced for the
// fixture's sentences (padding to 16 with the end-of-text id).
func TestMatchesHF(t *testing.T) {
	raw, err := os.ReadFile("testdata/tokenized.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Texts    []string `json:"texts"`
		InputIDs [][]int  `json:"input_ids"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	tok := load(t)
	got, err := tok.Tokenize(fx.Texts, 16, tok.EndID())
	if err != nil {
		t.Fatal(err)
	}
	for i := range fx.Texts {
		if !reflect.DeepEqual(got[i], fx.InputIDs[i]) {
			t.Errorf("%q:\n got %v\nwant %v", fx.Texts[i], got[i], fx.InputIDs[i])
		}
	}
}

func TestHandChecked(t *testing.T) {
	tok := load(t)
	id := func(s string) int { return tok.encoder[s] }
	tests := []struct {
		text string
		want []int
	}{
		// Case folds; runs of whitespace are one separator.
		{"PHOTO", []int{id("photo</w>")}},
		{"  a \t\n a ", []int{id("a</w>"), id("a</w>")}},
		// Digits are one token each.
		{"42", []int{id("4</w>"), id("2</w>")}},
		// The contraction is its own pre-token ("it", "'s"); this small vocabulary
		// has no "'s</w>" merge, so it stays two symbols.
		{"it's", []int{id("i"), id("t</w>"), id("'"), id("s</w>")}},
		{"Photo!", []int{id("photo</w>"), id("!</w>")}},
	}
	for _, tc := range tests {
		got := tok.Encode(tc.text)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	// Truncation keeps the end token last.
	ids, err := tok.Tokenize([]string{"a photo of a cat and a dog"}, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids[0]) != 5 || ids[0][0] != tok.StartID() || ids[0][4] != tok.EndID() {
		t.Errorf("truncated to 5: %v", ids[0])
	}
	if _, err := tok.Tokenize([]string{"a"}, 1, 0); err == nil {
		t.Error("a context of 1 was accepted")
	}
	// Letters outside the vocabulary become the unknown (end-of-text) id, per byte
	// symbol, as HF does.
	for _, x := range tok.Encode("é") {
		if x != tok.EndID() {
			t.Errorf("unknown symbol mapped to %d, want %d", x, tok.EndID())
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	vocab, merges := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		vocab, merges, want string
	}{
		{`{"a": 0`, "#version: 0.2\n", "vocab.json"},
		{`{"a": 0, "<|startoftext|>": 1}`, "#version: 0.2\n", "no <|endoftext|>"},
		{`{"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}`, "#version: 0.2\na b c\n", "merges.txt:2"},
	}
	for _, c := range cases {
		write(vocab, c.vocab)
		write(merges, c.merges)
		if _, err := Load(vocab, merges); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vocab %q merges %q: error %v, want %q", c.vocab, c.merges, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "none.json"), merges); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing vocab: %v", err)
	}
}
