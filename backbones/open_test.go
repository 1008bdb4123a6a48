package backbones

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kadapt/kadapt/core/backend/cpu"
)

// writeSafetensors writes a one-tensor safetensors file under the given key.
func writeSafetensors(t *testing.T, path, key string) {
	t.Helper()
	header := `{"` + key + `":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	buf = append(append(buf, header...), 0, 0, 0, 0)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenExplainsTheModelFolder: each way a model folder can be missing or
// incomplete gets an error that names the path and says what a folder must hold.
func TestOpenExplainsTheModelFolder(t *testing.T) {
	root := t.TempDir()
	folder := func(name string, files map[string]string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, content := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	hf := folder("hf-no-config", nil)
	writeSafetensors(t, filepath.Join(hf, "model.safetensors"), "vision_model.embeddings.patch_embedding.weight")
	layout := []string{"model.safetensors", "config.json", "vocab.json", "merges.txt", "tokenizer.json", "preprocessor_config.json"}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing", filepath.Join(root, "clip-vit-base-patch32"), append([]string{"clip-vit-base-patch32: no such file or folder"}, layout...)},
		{"empty", folder("empty", nil), append([]string{"has no weights: it is empty"}, layout...)},
		{"pytorch only", folder("pt", map[string]string{"config.json": "{}", "pytorch_model.bin": "x"}),
			append([]string{"it holds config.json, pytorch_model.bin", "pytorch_model.bin is a PyTorch/TF/Flax checkpoint: convert it to safetensors"}, layout...)},
		{"lfs pointer", folder("lfs", map[string]string{"model.safetensors": "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 605157884\n"}),
			[]string{"is a Git LFS pointer, not the weights", "git lfs pull"}},
		{"no config", hf, append([]string{"does not say its architecture", "--backbone"}, layout...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(cpu.New(), tc.path, OpenOptions{})
			if err == nil {
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error does not name %s: %v", tc.path, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
		})
	}
}
