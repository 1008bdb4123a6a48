package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// checkUsable is what a loaded tokenizer promises whatever files it came from:
// texts encode to ids that decode, and Tokenize frames them.
func checkUsable(t *testing.T, tok *Tokenizer) {
	t.Helper()
	for _, text := range []string{"a photo of a cat.", "İΣ 日本 🐱 <|endoftext|>", "\xff"} {
		ids := tok.Encode(text)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) = %v: id outside [0, %d)", text, ids, tok.VocabSize())
			}
		}
		if _, err := tok.Decode(ids); err != nil {
			t.Fatalf("Encode(%q) = %v, which does not decode: %v", text, ids, err)
		}
		if out, err := tok.Tokenize([]string{text}, 6, 0); err != nil || len(out[0]) != 6 {
			t.Fatalf("Tokenize(%q) = %v, %v", text, out, err)
		}
	}
}

// FuzzLoad feeds vocab.json and merges.txt, which come with downloaded models.
func FuzzLoad(f *testing.F) {
	vocab, err := os.ReadFile("testdata/vocab.json")
	if err != nil {
		f.Fatal(err)
	}
	merges, err := os.ReadFile("testdata/merges.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vocab, merges)
	const small = `{"a": 0, "b": 1, "ab</w>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}`
	f.Add([]byte(small), []byte("#version: 0.2\na b</w>\n"))
	f.Add([]byte(small), []byte(""))
	f.Add([]byte(`{"a": -1}`), []byte("a b c\n"))
	f.Fuzz(func(t *testing.T, vocab, merges []byte) {
		dir := t.TempDir()
		vp, mp := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
		if err := os.WriteFile(vp, vocab, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mp, merges, 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := Load(vp, mp)
		if err != nil {
			return
		}
		checkUsable(t, tok)
	})
}

// FuzzLoadJSON feeds tokenizer.json, the fast tokenizer's single file.
func FuzzLoadJSON(f *testing.F) {
	vocab, err := os.ReadFile("testdata/vocab.json")
	if err != nil {
		f.Fatal(err)
	}
	var v map[string]int
	if err := json.Unmarshal(vocab, &v); err != nil {
		f.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"model": map[string]any{"type": "BPE", "end_of_word_suffix": "</w>",
		"vocab": v, "merges": []any{"h e", []string{"l", "l"}}}})
	f.Add(doc)
	f.Add([]byte(`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":{"<|startoftext|>":0,"<|endoftext|>":1},"merges":[]}}`))
	f.Add([]byte(`{"model":{"type":"BPE","end_of_word_suffix":"</w>","vocab":{"<|startoftext|>":0,"<|endoftext|>":1},"merges":[["a","b"],"c d",7]}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p := filepath.Join(t.TempDir(), "tokenizer.json")
		if err := os.WriteFile(p, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadJSON(p)
		if err != nil {
			return
		}
		checkUsable(t, tok)
	})
}
