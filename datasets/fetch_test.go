package datasets

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// blobServer serves files by path with Range support; it can cut the first
// response for a path short by dropping the connection, or ignore Range headers.
type blobServer struct {
	files       map[string][]byte
	dropAfter   map[string]int // path → bytes sent before the first response is cut
	ignoreRange bool

	mu       sync.Mutex
	requests []string // "path range query"
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rng := r.Header.Get("Range")
	b.mu.Lock()
	b.requests = append(b.requests, r.URL.Path+" "+rng+" "+r.URL.RawQuery)
	drop, dropping := b.dropAfter[r.URL.Path]
	delete(b.dropAfter, r.URL.Path)
	b.mu.Unlock()
	data, ok := b.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	start := 0
	if rng != "" && !b.ignoreRange {
		s, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || s > len(data) {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if s == len(data) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = s
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, len(data)-1, len(data)))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	if dropping {
		w.Write(data[start : start+drop])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	w.Write(data[start:])
}

func (b *blobServer) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFetchResumesDroppedConnection(t *testing.T) {
	zipData := randomBytes(300<<10, 1)
	index := []byte("train.zip@a.png 0\n")
	labels := []byte("x\n")
	srv := &blobServer{
		files: map[string][]byte{
			"/base/mnist/train.zip":  zipData,
			"/base/mnist/train.txt":  index,
			"/base/mnist/labels.txt": labels,
		},
		dropAfter: map[string]int{"/base/mnist/train.zip": 100 << 10},
	}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	files := []File{{Path: "labels.txt"}, {Path: "train.txt"}, {Path: "train.zip", Size: int64(len(zipData)), SHA256: sha(zipData)}}
	root := t.TempDir()
	progress := &progressLog{}
	err := Fetch(context.Background(), "mnist", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL + "/base?sig=secret", Progress: progress, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "mnist")
	for name, want := range map[string][]byte{"train.zip": zipData, "train.txt": index, "labels.txt": labels} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want the %d served", name, len(got), err, len(want))
		}
		if _, err := os.Stat(filepath.Join(dir, name+".part")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s.part left behind: %v", name, err)
		}
	}
	var zipRequests []string
	for _, r := range srv.log() {
		if !strings.HasSuffix(r, "sig=secret") {
			t.Errorf("request %q lost the base URL's query", r)
		}
		if strings.HasPrefix(r, "/base/mnist/train.zip") {
			zipRequests = append(zipRequests, r)
		}
	}
	want := []string{
		"/base/mnist/train.zip  sig=secret",
		"/base/mnist/train.zip bytes=102400- sig=secret",
	}
	if strings.Join(zipRequests, "|") != strings.Join(want, "|") {
		t.Errorf("archive requests %q, want %q", zipRequests, want)
	}
	// The archive starts, breaks after 100 KiB (the server's drop), is started again
	// where it broke and ends whole, once; the small files start and end.
	wantLog := "start labels.txt 0/2, at 2, end <nil>; start train.txt 0/18, at 18, end <nil>; " +
		"start train.zip 0/307200; start train.zip 102400/307200, at 307200, end <nil>"
	if got := progress.String(); got != wantLog {
		t.Errorf("progress heard\n  %s\nwant\n  %s", got, wantLog)
	}

	// A second run finds everything in place and asks for nothing.
	before := len(srv.log())
	if err := Fetch(context.Background(), "mnist", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL + "/base?sig=secret", Files: files}); err != nil {
		t.Fatal(err)
	}
	if after := len(srv.log()); after != before {
		t.Errorf("second fetch made %d requests, want 0", after-before)
	}
}

func TestFetchFile(t *testing.T) {
	data := randomBytes(50<<10, 2)
	tests := []struct {
		name        string
		part        []byte // pre-existing .part
		ignoreRange bool
		drop        int
		want        File
		wantRanges  []string
	}{
		{"resume existing part", data[:1000], false, 0, File{Size: int64(len(data)), SHA256: sha(data)}, []string{"bytes=1000-"}},
		{"server ignores range", data[:1000], true, 0, File{SHA256: sha(data)}, []string{"bytes=1000-"}},
		{"drop, then range ignored", nil, true, 7000, File{Size: int64(len(data))}, []string{"", "bytes=7000-"}},
		{"part already complete", data, false, 0, File{Size: int64(len(data))}, nil},
		{"complete part, size unknown", data, false, 0, File{}, []string{"bytes=51200-"}},
		{"garbage longer than the file", append(bytes.Clone(data), 1, 2, 3), false, 0, File{Size: int64(len(data))}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &blobServer{files: map[string][]byte{"/f.bin": data}, ignoreRange: tt.ignoreRange, dropAfter: map[string]int{}}
			if tt.drop > 0 {
				srv.dropAfter["/f.bin"] = tt.drop
			}
			ts := httptest.NewTLSServer(srv)
			defer ts.Close()
			dest := filepath.Join(t.TempDir(), "sub", "f.bin")
			if tt.part != nil {
				writeFile(t, dest+".part", tt.part)
			}
			if err := FetchFile(context.Background(), ts.URL+"/f.bin", dest, tt.want, FetchOptions{Client: ts.Client()}); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes, %v; want the %d served", len(got), err, len(data))
			}
			var ranges []string
			for _, r := range srv.log() {
				ranges = append(ranges, strings.Split(r, " ")[1])
			}
			if strings.Join(ranges, "|") != strings.Join(tt.wantRanges, "|") {
				t.Errorf("ranges %q, want %q", ranges, tt.wantRanges)
			}
		})
	}
}

func TestFetchFailures(t *testing.T) {
	data := randomBytes(4096, 3)
	tests := []struct {
		name     string
		path     string
		want     File
		errHas   []string
		requests int
	}{
		{"checksum mismatch", "/f.bin", File{SHA256: sha([]byte("something else"))}, []string{"/f.bin", "SHA-256 " + sha(data)}, 1},
		{"server size differs", "/f.bin", File{Size: 10}, []string{"server reports 4096 bytes, want 10"}, 1},
		{"not found is not retried", "/missing.bin", File{}, []string{"/missing.bin", "404"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &blobServer{files: map[string][]byte{"/f.bin": data}}
			ts := httptest.NewTLSServer(srv)
			defer ts.Close()
			dest := filepath.Join(t.TempDir(), "f.bin")
			err := FetchFile(context.Background(), ts.URL+tt.path+"?sig=secret", dest, tt.want, FetchOptions{Client: ts.Client(), Attempts: 3})
			wantErr(t, err, tt.errHas...)
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the URL query", err)
			}
			for _, p := range []string{dest, dest + ".part"} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists after a failed fetch (%v)", p, err)
				}
			}
			if n := len(srv.log()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}

	// A wrong-sized file at the final path is reported, not overwritten.
	dest := filepath.Join(t.TempDir(), "f.bin")
	writeFile(t, dest, []byte("short"))
	err := FetchFile(context.Background(), "https://127.0.0.1:1/unused", dest, File{Size: 4096}, FetchOptions{})
	wantErr(t, err, "exists with 5 bytes, want 4096")

	// Cancellation stops the retries.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = FetchFile(ctx, "https://127.0.0.1:1/unused", filepath.Join(t.TempDir(), "g"), File{}, FetchOptions{Attempts: 50})
	wantErr(t, err, "canceled")
}

// tinyELEVATER is a two-image test split in ELEVATER's layout: data/images.zip and
// its index, labels 1 and 0 of "negative", "positive".
func tinyELEVATER(t *testing.T) (zipData, index []byte) {
	var zipBuf bytes.Buffer
	zw := zip.NewWriter(&zipBuf)
	for i, member := range []string{"p/0.png", "p/1.png"} {
		w, err := zw.Create(member)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pngBytes(t, testImage(uint8(30+i), 2, 2)))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return zipBuf.Bytes(), []byte("data/images.zip@p/0.png 1\ndata/images.zip@p/1.png 0\n")
}

// TestFetchUnreachable: with no network, a fetch says the server could not be
// reached and names its host, and leaves no folder behind — an empty rendered-sst2/
// would hide the copy a user already has as rendered_sst2/ from every later run.
// What is already there is kept.
func TestFetchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String() // nothing listens here once closed
	ln.Close()

	root := t.TempDir()
	zipData, index := tinyELEVATER(t)
	have := filepath.Join(root, "rendered_sst2")
	writeFile(t, filepath.Join(have, "labels.txt"), []byte("negative\npositive\n"))
	writeFile(t, filepath.Join(have, "test.txt"), index)
	writeFile(t, filepath.Join(have, "data", "images.zip"), zipData)
	for _, opt := range []FetchOptions{
		{BaseURL: dead, Attempts: 2},                                      // the MANIFEST first
		{BaseURL: dead, Attempts: 1, Files: []File{{Path: "data/x.zip"}}}, // a nested file
	} {
		err := Fetch(context.Background(), "rendered-sst2", root, opt)
		wantErr(t, err, "cannot reach "+ln.Addr().String(), dead+"/rendered-sst2/", "attempts failed", "Check the network")
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%v is not ErrUnreachable", err)
		}
		if strings.Contains(err.Error(), "no built-in file list") {
			t.Errorf("%v blames the file list for a network failure", err)
		}
		if _, err := os.Stat(filepath.Join(root, "rendered-sst2")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a failed fetch left rendered-sst2/ behind (%v)", err)
		}
	}
	d, err := LoadELEVATER(root, "rendered-sst2", TestSplit)
	if err != nil {
		t.Fatalf("the copy already there no longer loads: %v", err)
	}
	d.Close()

	// A fetch that failed after data arrived keeps what arrived and prunes only the
	// folders it made that stayed empty.
	data := randomBytes(4096, 5)
	srv := &blobServer{files: map[string][]byte{"/rendered-sst2/a/b.bin": data, "/rendered-sst2/c.bin": data}}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	root = t.TempDir()
	err = Fetch(context.Background(), "rendered-sst2", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL,
		Files: []File{{Path: "c.bin"}, {Path: "a/b.bin", SHA256: sha([]byte("other"))}}})
	wantErr(t, err, "SHA-256")
	if got, err := os.ReadFile(filepath.Join(root, "rendered-sst2", "c.bin")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("c.bin, fetched before the failure: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(root, "rendered-sst2", "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed file's empty folder a/ is left (%v)", err)
	}
}

// progressLog is a Progress that writes down each file's start, its last byte
// count and its end.
type progressLog struct {
	events []string
	done   int64
}

func (p *progressLog) Start(file string, done, total int64) {
	p.events = append(p.events, fmt.Sprintf("start %s %d/%d", file, done, total))
	p.done = done
}
func (p *progressLog) Advance(done int64) { p.done = done }
func (p *progressLog) End(err error) {
	p.events = append(p.events, fmt.Sprintf("at %d", p.done), fmt.Sprintf("end %v", err))
}
func (p *progressLog) String() string {
	s := strings.Join(p.events, ", ")
	return strings.ReplaceAll(s, ", start", "; start")
}

// TestFetchWithManifest fetches a registered dataset whose server lists its files in
// base/<name>/MANIFEST, checking sizes and checksums from it, and then loads what
// arrived with LoadELEVATER.
func TestFetchWithManifest(t *testing.T) {
	zipData, index := tinyELEVATER(t)
	srv := &blobServer{files: map[string][]byte{
		"/rendered-sst2/MANIFEST": []byte("# files\nlabels.txt\ntest.txt " + fmt.Sprint(len(index)) + "\n" +
			"data/images.zip " + fmt.Sprint(len(zipData)) + " " + sha(zipData) + "\n"),
		"/rendered-sst2/labels.txt":      []byte("negative\npositive\n"),
		"/rendered-sst2/test.txt":        index,
		"/rendered-sst2/data/images.zip": zipData,
	}}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	root := t.TempDir()
	if err := Fetch(context.Background(), "rendered-sst2", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "rendered-sst2", "data", "images.zip"))
	if err != nil || !bytes.Equal(got, zipData) {
		t.Errorf("images.zip = %d bytes, %v; want the %d served", len(got), err, len(zipData))
	}
	if n := len(srv.log()); n != 4 {
		t.Errorf("%d requests, want 4 (manifest, labelmap, index, archive)", n)
	}
	d, err := LoadELEVATER(root, "rendered-sst2", TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !slices.Equal(d.Classes, []string{"negative", "positive"}) || d.Len() != 2 || d.Samples[0].Labels[0] != 1 {
		t.Errorf("fetched dataset: classes %q, %d samples, labels %v", d.Classes, d.Len(), d.Samples[0].Labels)
	}
	img, err := d.Image(1)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _, _ := img.At(0, 0).RGBA(); r>>8 != 31 {
		t.Errorf("Image(1) red %d, want 31", r>>8)
	}
	// A second Fetch finds the kept manifest and every file in place: nothing is
	// requested again.
	before := len(srv.log())
	if err := Fetch(context.Background(), "rendered-sst2", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.log()) - before; n != 0 {
		t.Errorf("re-fetch made %d requests, want 0", n)
	}
	// A manifest entry that leaves the dataset folder is refused before any download.
	srv.files["/food-101/MANIFEST"] = []byte("../evil.txt\n")
	wantErr(t, Fetch(context.Background(), "food-101", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL}), "food-101", `"../evil.txt" leaves the dataset folder`)
	wantErr(t, Fetch(context.Background(), "kitti", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL}), "kitti-distance")
	// No manifest and no file list: the error says what to do.
	wantErr(t, Fetch(context.Background(), "dtd", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL, Attempts: 1}), "no built-in file list for dtd")
	// A checksum in the manifest that does not match leaves no file behind.
	srv.files["/mnist/MANIFEST"] = []byte("a.bin 3 " + sha([]byte("abc")) + "\n")
	srv.files["/mnist/a.bin"] = []byte("abd")
	wantErr(t, Fetch(context.Background(), "mnist", root, FetchOptions{Client: ts.Client(), BaseURL: ts.URL, Attempts: 1}), "a.bin")
	if _, err := os.Stat(filepath.Join(root, "mnist", "a.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a corrupt download was left at its final path: %v", err)
	}
}

func TestReadManifestErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"", "lists no files"},
		{"a.zip lots\n", "manifest.txt:1: size \"lots\""},
		{"a.zip 3 abc\n", "not 64 hex digits"},
		// 64 bytes but not hex: accepted, then no download could ever match (found by FuzzReadManifest).
		{"a.zip 3 " + strings.Repeat("z", 64) + "\n", "not 64 hex digits"},
		{"a b c d\n", "want \"path [size [sha256]]\""},
	} {
		p := filepath.Join(dir, "manifest.txt")
		writeFile(t, p, []byte(tc.body))
		_, err := ReadManifest(p)
		wantErr(t, err, tc.want)
	}
}

// TestFetchVerifiesExistingFile: a file already in place with the right size was
// kept without its pinned SHA-256 being checked, so a tampered file survived every
// fetch. Now it is checked each time and refused (kept on disk, never deleted).
func TestFetchVerifiesExistingFile(t *testing.T) {
	data := randomBytes(4096, 5)
	srv := &blobServer{files: map[string][]byte{"/f.bin": data}, dropAfter: map[string]int{}}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f.bin")
	tampered := bytes.Clone(data)
	tampered[100] ^= 1
	writeFile(t, dest, tampered)
	want := File{Size: int64(len(data)), SHA256: sha(data)}
	err := FetchFile(context.Background(), ts.URL+"/f.bin", dest, want, FetchOptions{Client: ts.Client()})
	wantErr(t, err, "f.bin", sha(tampered), sha(data), "remove it")
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, tampered) {
		t.Error("the refused file was changed")
	}
	// The genuine file passes without a request.
	writeFile(t, dest, data)
	if err := FetchFile(context.Background(), ts.URL+"/f.bin", dest, want, FetchOptions{Client: ts.Client()}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.log()); n != 0 {
		t.Errorf("%d requests for files already in place", n)
	}
}

// TestFetchRefusesPlainHTTP: http URLs, and https redirecting to http, were
// followed; they are refused unless Insecure (--insecure) is set.
func TestFetchRefusesPlainHTTP(t *testing.T) {
	data := randomBytes(1000, 6)
	srv := &blobServer{files: map[string][]byte{"/f.bin": data}, dropAfter: map[string]int{}}
	plain := httptest.NewServer(srv)
	defer plain.Close()
	dest := filepath.Join(t.TempDir(), "f.bin")
	err := FetchFile(context.Background(), plain.URL+"/f.bin?sig=secret", dest, File{}, FetchOptions{})
	wantErr(t, err, "plain http is refused", "--insecure")
	if strings.Contains(err.Error(), "secret") || len(srv.log()) != 0 {
		t.Errorf("refusal leaked the query or still sent a request: %v", err)
	}
	wantErr(t, Fetch(context.Background(), "mnist", t.TempDir(), FetchOptions{BaseURL: plain.URL}), "plain http is refused")
	wantErr(t, FetchFile(context.Background(), "ftp://example.org/f.bin", dest, File{}, FetchOptions{}), `scheme "ftp"`)

	redirect := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/f.bin", http.StatusFound))
	defer redirect.Close()
	err = FetchFile(context.Background(), redirect.URL+"/f.bin", dest, File{}, FetchOptions{Client: redirect.Client(), Attempts: 1})
	wantErr(t, err, "plain http is refused")

	if err := FetchFile(context.Background(), plain.URL+"/f.bin", dest, File{SHA256: sha(data)}, FetchOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}
}

// unsizedServer streams n bytes without a Content-Length.
type unsizedServer struct{ n int }

func (s unsizedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	chunk := make([]byte, 4096)
	for sent := 0; sent < s.n; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// TestFetchCapsSize: a file of unknown size was read for as long as the server
// sent, filling the disk. Downloads stop at the cap (MaxBytes, or the listed
// size), leave no partial file, and say how to raise it.
func TestFetchCapsSize(t *testing.T) {
	ts := httptest.NewTLSServer(unsizedServer{n: 1 << 20})
	defer ts.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "f.bin")
	err := FetchFile(context.Background(), ts.URL+"/f.bin", dest, File{}, FetchOptions{Client: ts.Client(), MaxBytes: 64 << 10})
	wantErr(t, err, "more than 65536 bytes", "--max-bytes")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
	// A listed size caps the download too.
	err = FetchFile(context.Background(), ts.URL+"/f.bin", dest, File{Size: 10000}, FetchOptions{Client: ts.Client()})
	wantErr(t, err, "more than 10000 bytes")
	// A server announcing more than the cap is refused before reading.
	sized := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
	}))
	defer sized.Close()
	err = FetchFile(context.Background(), sized.URL+"/f.bin", dest, File{}, FetchOptions{Client: sized.Client(), MaxBytes: 1000})
	wantErr(t, err, "server reports 1000000 bytes, more than the cap of 1000")
	// Under the cap it downloads.
	if err := FetchFile(context.Background(), ts.URL+"/f.bin", dest, File{}, FetchOptions{Client: ts.Client(), MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
}
