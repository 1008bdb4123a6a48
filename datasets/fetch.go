package datasets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is the public location the ELEVATER toolkit downloads from. Fetch
// asks for a dataset's files at base/<name>/<path>. When the container asks for a
// shared-access query, pass the base URL with that query as FetchOptions.BaseURL (the
// query is kept on every file's URL and never printed).
const DefaultBaseURL = "https://cvinthewildeus.blob.core.windows.net/datasets"

// File is one file to download: a slash-separated path below the dataset's folder,
// with its size and SHA-256 when known (verified when given).
type File struct {
	Path   string
	Size   int64
	SHA256 string
}

// FetchOptions configures Fetch.
type FetchOptions struct {
	BaseURL  string       // "" means DefaultBaseURL
	Progress Progress     // nil means silent
	Client   *http.Client // nil means http.DefaultClient
	// Files lists what to download. Empty means: read the dataset's MANIFEST (see
	// Fetch) and download every file it lists. kadapt bundles no per-dataset file
	// lists of its own.
	Files []File
	// Attempts bounds the requests per file; a dropped connection is resumed where
	// it broke. 0 means 5.
	Attempts int
	// Insecure allows plain http. Without it only https is fetched, redirects
	// included: checksums are optional, so transport security is what stops a
	// network attacker from substituting data.
	Insecure bool
	// MaxBytes caps a file whose size is not known in advance (no size in the file
	// list); 0 means DefaultMaxBytes. The MANIFEST is capped at maxManifestBytes.
	MaxBytes int64
}

// Progress follows downloads (FetchOptions.Progress): for each file the server
// answers, Start with the bytes already on disk and the size (-1 while unknown),
// Advance as bytes arrive, and End once the file is done or given up. A file resumed
// after a dropped connection is started again. Names are file names, never URLs,
// whose query may hold an access signature.
type Progress interface {
	Start(file string, done, total int64)
	Advance(done int64)
	End(err error)
}

// DefaultMaxBytes caps a download of unknown size: above ELEVATER's largest
// archives, below a disk filled by a server that never stops sending.
const DefaultMaxBytes = 64 << 30

// maxManifestBytes caps the file list, a few lines per file.
const maxManifestBytes = 16 << 20

// ManifestName is the file list Fetch reads when FetchOptions.Files is empty.
const ManifestName = "MANIFEST"

// Fetch downloads the registered dataset name into root/<name>/ (where LoadELEVATER
// finds it), skipping files already there.
//
// Which files: FetchOptions.Files when given. Otherwise Fetch first downloads
// <BaseURL>/<name>/MANIFEST into root/<name>/MANIFEST — a text file, one file a line,
// "path [size [sha256]]", path slash-separated below the dataset's folder, blank
// lines and # comments ignored (ReadManifest) — and then every file it lists from
// <BaseURL>/<name>/<path>. The manifest is kept and reused by later calls; delete it
// to read the server's again. The MANIFEST is kadapt's own scheme, which the ELEVATER
// store at DefaultBaseURL is not known to publish: against it, pass Files, or serve a
// mirror that has manifests.
//
// Each file is written to "<name>.part", resumed with an HTTP Range request when that
// exists or the connection drops, checked against its size and SHA-256 when known,
// and only then renamed to its final name, so a file at the final path is always
// complete.
func Fetch(ctx context.Context, name, root string, opt FetchOptions) error {
	if _, err := Lookup(name); err != nil {
		return err
	}
	base := opt.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("datasets: base URL: %w", err)
	}
	if err := checkScheme(u, opt.Insecure); err != nil {
		return err
	}
	dir := filepath.Join(root, name)
	files := opt.Files
	if len(files) == 0 {
		manifest := filepath.Join(dir, ManifestName)
		mopt := opt
		mopt.MaxBytes = maxManifestBytes
		if err := FetchFile(ctx, u.JoinPath(name, ManifestName).String(), manifest, File{}, mopt); err != nil {
			if errors.Is(err, ErrUnreachable) {
				return err // the server never answered: what it serves is not the question
			}
			return fmt.Errorf("%w (kadapt has no built-in file list for %s: give the files explicitly, or serve a %s)", err, name, ManifestName)
		}
		if files, err = ReadManifest(manifest); err != nil {
			return err
		}
	}
	for _, f := range files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return fmt.Errorf("datasets: %s: file %q leaves the dataset folder", name, f.Path)
		}
		dest := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := FetchFile(ctx, u.JoinPath(name, f.Path).String(), dest, f, opt); err != nil {
			return err
		}
	}
	return nil
}

// ReadManifest parses a file list: "path [size [sha256]]" per line, # comments.
func ReadManifest(path string) ([]File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	var files []File
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		f := File{Path: fields[0]}
		if len(fields) > 3 {
			return nil, fmt.Errorf("datasets: %s:%d: want \"path [size [sha256]]\", got %q", path, n+1, line)
		}
		if len(fields) > 1 {
			if f.Size, err = strconv.ParseInt(fields[1], 10, 64); err != nil || f.Size < 0 {
				return nil, fmt.Errorf("datasets: %s:%d: size %q is not a byte count", path, n+1, fields[1])
			}
		}
		if len(fields) > 2 {
			// Hex, not just 64 bytes: a malformed pin never matches, and would only
			// surface as a checksum failure after the whole download.
			if _, err := hex.DecodeString(fields[2]); err != nil || len(fields[2]) != 64 {
				return nil, fmt.Errorf("datasets: %s:%d: sha256 %q is not 64 hex digits", path, n+1, fields[2])
			}
			f.SHA256 = strings.ToLower(fields[2])
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("datasets: %s lists no files", path)
	}
	return files, nil
}

// FetchFile downloads rawURL to dest as Fetch does for each file; want carries
// the expected size and SHA-256 (either may be unknown).
//
// A file already at dest is kept only if it matches what is known of it: its size,
// and its pinned SHA-256, which is checked every time. A file that does not match
// is refused, never deleted: the error names both checksums and says to remove it.
func FetchFile(ctx context.Context, rawURL, dest string, want File, opt FetchOptions) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("datasets: %s: %w", redact(rawURL), redactErr(err))
	}
	if err := checkScheme(u, opt.Insecure); err != nil {
		return err
	}
	if fi, err := os.Stat(dest); err == nil {
		if want.Size != 0 && fi.Size() != want.Size {
			return fmt.Errorf("datasets: %s exists with %d bytes, want %d; remove it to download again", dest, fi.Size(), want.Size)
		}
		if want.SHA256 == "" {
			return nil
		}
		sum, _, err := sha256File(dest)
		if err != nil {
			return err
		}
		if !strings.EqualFold(sum, want.SHA256) {
			return fmt.Errorf("datasets: %s exists but its SHA-256 is %s, want %s (changed or corrupt); remove it to download again",
				dest, sum, strings.ToLower(want.SHA256))
		}
		return nil
	}
	client := opt.Client
	if client == nil {
		client = http.DefaultClient
	}
	if !opt.Insecure {
		// A redirect to plain http would undo the scheme check.
		c := *client
		next := c.CheckRedirect
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if err := checkScheme(req.URL, false); err != nil {
				return err
			}
			if next != nil {
				return next(req, via)
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		}
		client = &c
	}
	limit := want.Size
	if limit <= 0 {
		limit = opt.MaxBytes
		if limit <= 0 {
			limit = DefaultMaxBytes
		}
	}
	attempts := opt.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	d := &download{
		ctx: ctx, client: client, url: rawURL, shown: redact(rawURL), part: dest + ".part",
		want: want, limit: limit, progress: newProgress(opt.Progress, filepath.Base(dest)),
	}
	for try := 1; try <= attempts; try++ {
		var progressed bool
		progressed, err = d.attempt()
		if err == nil || errors.Is(err, errPermanent) || ctx.Err() != nil {
			break
		}
		if !progressed && try < attempts {
			// Back off only when nothing arrived; a connection that broke mid-file
			// is resumed at once.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(try) * 500 * time.Millisecond):
			}
		}
	}
	d.progress.finish(err)
	if err == nil {
		err = d.verify()
	}
	if err == nil {
		if err = os.Rename(d.part, dest); err != nil {
			err = fmt.Errorf("datasets: %w", err)
		}
	}
	if err != nil {
		d.cleanUp()
		var ue *unreachableError
		if errors.As(err, &ue) {
			ue.attempts = attempts
		}
	}
	return err
}

// ErrUnreachable marks a download that failed because the server could not be
// reached at all: no route, no such host, connection refused or timed out.
var ErrUnreachable = errors.New("network unreachable")

// unreachableError names the host that could not be reached; it is ErrUnreachable.
type unreachableError struct {
	host, url string
	err       error
	attempts  int // 0 until FetchFile has given up
}

func (e *unreachableError) Error() string {
	msg := fmt.Sprintf("datasets: cannot reach %s (the network is unreachable, or the host unknown or refusing connections) to fetch %s: %v",
		e.host, e.url, e.err)
	if e.attempts > 0 {
		msg += fmt.Sprintf("; %d attempts failed. Check the network connection (and HTTPS_PROXY if one is needed), or fetch from a reachable mirror with --base-url", e.attempts)
	}
	return msg
}

func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.err }

// unreachable turns a request's transport error into an unreachableError when no
// answer came back, so that the message names the host and says what to check.
func unreachable(shown string, err error) error {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	if !errors.As(err, &dnsErr) && !(errors.As(err, &opErr) && opErr.Op == "dial") && !(errors.As(err, &netErr) && netErr.Timeout()) {
		return fmt.Errorf("datasets: %s: %w", shown, redactErr(err))
	}
	host := shown
	if u, perr := url.Parse(shown); perr == nil {
		host = u.Host
	}
	return &unreachableError{host: host, url: shown, err: redactErr(err)}
}

// cleanUp, after a failed download, removes what holds nothing: an empty .part and
// the folders this download created that are still empty. A folder left empty by a
// failed fetch would be taken for the dataset by later runs (LoadELEVATER prefers
// root/<name> to any other match); a .part with bytes is kept for the next try to
// resume, and nothing else is touched.
func (d *download) cleanUp() {
	if fi, err := os.Stat(d.part); err == nil && fi.Size() == 0 {
		os.Remove(d.part)
	}
	if d.madeDir == "" {
		return
	}
	for dir := filepath.Dir(d.part); ; dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil || dir == d.madeDir {
			return // not empty, or the top of what this download made
		}
	}
}

// makeDir creates the .part file's folder and its missing parents, remembering the
// topmost one it made for cleanUp.
func (d *download) makeDir() error {
	dir := filepath.Dir(d.part)
	top := ""
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("datasets: %w", err)
	}
	if d.madeDir == "" {
		d.madeDir = top
	}
	return nil
}

// errPermanent marks failures that retrying cannot fix (HTTP 404, 403, …).
var errPermanent = errors.New("permanent")

type download struct {
	ctx      context.Context
	client   *http.Client
	url      string
	shown    string // url without its query, which may hold an access signature
	part     string
	want     File
	limit    int64 // the most bytes the file may have
	total    int64 // -1 while unknown
	progress *tracker
	madeDir  string // the topmost folder this download created, "" if none
}

// attempt requests the rest of the file after what .part already holds and
// appends it. progressed reports whether any byte arrived.
func (d *download) attempt() (progressed bool, err error) {
	have := int64(0)
	if fi, err := os.Stat(d.part); err == nil {
		have = fi.Size()
	}
	if d.want.Size > 0 && have > d.want.Size {
		// More than the file should hold: the partial file is garbage.
		if err := os.Remove(d.part); err != nil {
			return false, fmt.Errorf("datasets: %w", err)
		}
		have = 0
	}
	if d.want.Size > 0 && have == d.want.Size {
		return false, nil
	}
	req, err := http.NewRequestWithContext(d.ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return false, fmt.Errorf("datasets: %s: %w", d.shown, errors.Join(err, errPermanent))
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return false, unreachable(d.shown, err)
	}
	defer resp.Body.Close()

	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return false, fmt.Errorf("datasets: %s: asked for bytes from %d, server sent range %q",
				d.shown, have, resp.Header.Get("Content-Range"))
		}
		d.total = total
	case http.StatusOK:
		// The server ignored the Range header: start over.
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		have = 0
		d.total = -1
		if resp.ContentLength >= 0 {
			d.total = resp.ContentLength
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// .part may already be whole; verify decides.
		if _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && total == have {
			return false, nil
		}
		if err := os.Remove(d.part); err != nil {
			return false, fmt.Errorf("datasets: %w", err)
		}
		return false, fmt.Errorf("datasets: %s: server rejected resuming at byte %d; restarting", d.shown, have)
	default:
		err := fmt.Errorf("datasets: %s: HTTP %s", d.shown, resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			err = errors.Join(err, errPermanent)
		}
		return false, err
	}
	if d.want.Size > 0 && d.total >= 0 && d.total != d.want.Size {
		return false, fmt.Errorf("datasets: %s: server reports %d bytes, want %d: %w", d.shown, d.total, d.want.Size, errPermanent)
	}
	if d.total > d.limit {
		return false, fmt.Errorf("datasets: %s: server reports %d bytes, more than the cap of %d (raise it with --max-bytes): %w",
			d.shown, d.total, d.limit, errPermanent)
	}
	if d.total < 0 && d.want.Size > 0 {
		d.total = d.want.Size
	}
	// The folder is made only once the server has answered with data, so a fetch
	// that never reached it leaves nothing behind.
	if err := d.makeDir(); err != nil {
		return false, err
	}
	f, err := os.OpenFile(d.part, flags, 0o644)
	if err != nil {
		return false, fmt.Errorf("datasets: %w", err)
	}
	d.progress.start(have, d.total)
	// One byte beyond the cap is read to tell "exactly at the cap" from "over it".
	n, copyErr := io.Copy(f, io.TeeReader(io.LimitReader(resp.Body, d.limit-have+1), d.progress))
	syncErr := f.Sync()
	closeErr := f.Close()
	if have+n > d.limit {
		err := fmt.Errorf("datasets: %s: more than %d bytes arrived, the cap for this file (raise it with --max-bytes): %w",
			d.shown, d.limit, errPermanent)
		if rmErr := os.Remove(d.part); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return true, err
	}
	if copyErr != nil {
		return n > 0, fmt.Errorf("datasets: %s: after %d bytes: %w", d.shown, have+n, redactErr(copyErr))
	}
	if err := errors.Join(syncErr, closeErr); err != nil {
		return n > 0, fmt.Errorf("datasets: %w", err)
	}
	if d.total >= 0 && have+n < d.total {
		return n > 0, fmt.Errorf("datasets: %s: connection ended at byte %d of %d", d.shown, have+n, d.total)
	}
	return n > 0, nil
}

// verify checks the finished .part against the expected size and SHA-256 and
// deletes it when it does not match, so the next try starts clean.
func (d *download) verify() error {
	sum, n, err := sha256File(d.part)
	if err != nil {
		return err
	}
	var bad error
	switch {
	case d.want.Size > 0 && n != d.want.Size:
		bad = fmt.Errorf("datasets: %s: got %d bytes, want %d", d.shown, n, d.want.Size)
	case d.want.SHA256 != "" && !strings.EqualFold(sum, d.want.SHA256):
		bad = fmt.Errorf("datasets: %s: SHA-256 %s, want %s", d.shown, sum, strings.ToLower(d.want.SHA256))
	}
	if bad != nil {
		if err := os.Remove(d.part); err != nil {
			bad = errors.Join(bad, err)
		}
		return bad
	}
	return nil
}

// sha256File returns a file's SHA-256 in hex and its length.
func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("datasets: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// checkScheme refuses anything but https, and plain http unless insecure is set.
func checkScheme(u *url.URL, insecure bool) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && insecure:
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("datasets: %s: plain http is refused (anyone on the path can change the data); use https, or pass --insecure: %w",
			redact(u.String()), errPermanent)
	}
	return fmt.Errorf("datasets: %s: unsupported URL scheme %q (want https): %w", redact(u.String()), u.Scheme, errPermanent)
}

// parseContentRange reads "bytes start-end/total"; total is -1 for "*".
func parseContentRange(s string) (start, total int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		var err error
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	if rng == "*" {
		return 0, total, true
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, total, true
}

// redact drops the query (an access signature, possibly) from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}

// redactErr strips the URL net/http embeds in its errors, which carries the query.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tracker relays a download's progress to a Progress that may be nil, and counts
// the bytes on disk.
type tracker struct {
	to      Progress
	name    string
	done    int64
	started bool
}

func newProgress(to Progress, name string) *tracker {
	return &tracker{to: to, name: name}
}

func (p *tracker) start(done, total int64) {
	p.done, p.started = done, true
	if p.to != nil {
		p.to.Start(p.name, done, total)
	}
}

func (p *tracker) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.to != nil {
		p.to.Advance(p.done)
	}
	return len(b), nil
}

func (p *tracker) finish(err error) {
	if p.to != nil && p.started {
		p.to.End(err)
	}
}
