package datasets

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestRelabel: train classes {cat, dog} and test classes {dog, zebra} indexed test
// labels against the test list, so "dog" (test label 0) was scored as "cat". Test
// classes are now mapped by name onto the training list; a class the training
// split lacks is an error.
func TestRelabel(t *testing.T) {
	dir := t.TempDir()
	img := pngBytes(t, testImage(1, 2, 2))
	for _, f := range []string{"train/cat/a.png", "train/dog/b.png", "test/dog/c.png", "test/zebra/d.png", "test2/dog/e.png"} {
		writeFile(t, filepath.Join(dir, f), img)
	}
	train, err := LoadImageFolder(filepath.Join(dir, "train"))
	if err != nil {
		t.Fatal(err)
	}
	test, err := LoadImageFolder(filepath.Join(dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = test.Relabel(train.Classes)
	wantErr(t, err, "test", "zebra", "training split lacks")

	only, err := LoadImageFolder(filepath.Join(dir, "test2"))
	if err != nil {
		t.Fatal(err)
	}
	if only.Samples[0].Labels[0] != 0 {
		t.Fatalf("dog is %d in a one-class folder", only.Samples[0].Labels[0])
	}
	mapped, err := only.Relabel(train.Classes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mapped.Classes, train.Classes) || mapped.Samples[0].Labels[0] != 1 {
		t.Errorf("mapped classes %v, label %v; want %v and dog = 1", mapped.Classes, mapped.Samples[0].Labels, train.Classes)
	}
	if _, err := mapped.Image(0); err != nil {
		t.Errorf("a relabelled dataset reads its images: %v", err)
	}
	if only.Samples[0].Labels[0] != 0 {
		t.Error("Relabel changed the original dataset")
	}

	// CSV with numeric labels: a test label beyond the training classes was found
	// only when the test split was scored, after training.
	writeFile(t, filepath.Join(dir, "train.csv"), []byte("a.png,0\nb.png,4\n"))
	writeFile(t, filepath.Join(dir, "test.csv"), []byte("c.png,2\nd.png,7\n"))
	trainCSV, err := LoadManifest(filepath.Join(dir, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	testCSV, err := LoadManifest(filepath.Join(dir, "test.csv"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = testCSV.Relabel(trainCSV.Classes)
	wantErr(t, err, "test", "7")
}

// TestOnlyRegularFiles: a manifest naming a FIFO hung the run; /dev/zero was read
// up to the size cap. Both are refused at once.
func TestOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.png")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	writeFile(t, filepath.Join(dir, "m.csv"), []byte("pipe.png,0\n/dev/zero,0\nsub,0\n"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := LoadManifest(filepath.Join(dir, "m.csv"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, want := range []string{"pipe.png", "/dev/zero", "sub"} {
			_, err := d.Image(i)
			wantErr(t, err, want, "not a regular file")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO listed in a manifest hangs")
	}
	big := filepath.Join(dir, "big.png")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(MaxEncodedBytes + 1) // sparse: no disk used
	f.Close()
	writeFile(t, filepath.Join(dir, "m2.csv"), []byte("big.png,0\n"))
	d, err = LoadManifest(filepath.Join(dir, "m2.csv"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Image(0)
	wantErr(t, err, "big.png", "more than")
}
