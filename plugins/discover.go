package plugins

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kadapt/kadapt/host/atomicfile"
)

// FilePrefix starts the file name of every plugin binary: kadapt-plugin-lora is the
// plugin lora. Discovery and Find look at nothing else, so no other file in a plugin
// directory — a shared bin directory on KADAPT_PLUGIN_PATH, a stray script — is ever
// executed to ask what it is.
const FilePrefix = "kadapt-plugin-"

// DiscoverTimeout bounds how long discovery waits for one plugin to start and
// describe itself; plugins are asked all at once.
const DiscoverTimeout = 5 * time.Second

// Info is one discovered plugin.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Summary string `json:"summary"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

// SearchPath is where plugins are looked for, in order: dirs (from configuration),
// each directory in $KADAPT_PLUGIN_PATH, then bin/plugins beside the host executable.
func SearchPath(dirs ...string) []string {
	var out []string
	out = append(out, dirs...)
	if env := os.Getenv("KADAPT_PLUGIN_PATH"); env != "" {
		out = append(out, filepath.SplitList(env)...)
	}
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return out
}

// isPlugin says whether p is a plugin candidate: a regular, executable file.
func isPlugin(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Find returns the path of the plugin called name: the first executable
// FilePrefix+name in the search path, or name itself when it is a path.
func Find(name string, dirs []string) (string, error) {
	if strings.ContainsRune(name, os.PathSeparator) {
		return name, nil // an explicit path
	}
	for _, d := range dirs {
		if p := filepath.Join(d, FilePrefix+name); isPlugin(p) {
			return p, nil
		}
	}
	there := "none"
	if names := pluginNames(dirs); len(names) > 0 {
		there = strings.Join(names, ", ")
	}
	return "", fmt.Errorf("no plugin %q (a file %s%s) in %s; plugins there: %s (build them with `make build`, or set KADAPT_PLUGIN_PATH)", name, FilePrefix, name, strings.Join(dirs, ", "), there)
}

// pluginNames lists, sorted and once each, the plugins in dirs by their file names
// alone (none is run): what a mistyped --plugin could have meant.
func pluginNames(dirs []string) []string {
	var names []string
	for _, d := range dirs {
		entries, _ := os.ReadDir(d) // a search-path folder that does not exist holds none
		for _, e := range entries {
			if n, ok := strings.CutPrefix(e.Name(), FilePrefix); ok && n != "" && isPlugin(filepath.Join(d, e.Name())) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Discover lists the plugins in dirs (files named FilePrefix+NAME). A description
// comes from the cache when the binary's SHA-256 was described before; the others
// are started all at once, each given DiscoverTimeout (or opt.StartTimeout) to
// start and answer. Files that fail, or describe themselves under another name than
// their file's, are reported in errs. A name found twice keeps the first
// (search-path order).
func Discover(dirs []string, opt OpenOptions) (found []Info, errs []error) {
	var paths []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue // a missing directory is not an error: the path lists candidates
		}
		for _, e := range entries {
			if p := filepath.Join(d, e.Name()); strings.HasPrefix(e.Name(), FilePrefix) && isPlugin(p) {
				paths = append(paths, p)
			}
		}
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = DiscoverTimeout
	}
	if opt.CallTimeout == 0 {
		opt.CallTimeout = DiscoverTimeout
	}
	infos := make([]Info, len(paths))
	failures := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, sum, err := DescribeFile(p, opt)
			want := strings.TrimPrefix(filepath.Base(p), FilePrefix)
			switch {
			case err != nil:
				failures[i] = err
			case d.Name != want:
				failures[i] = fmt.Errorf("plugin %s describes itself as %q: name the file %s%s", p, d.Name, FilePrefix, d.Name)
			default:
				infos[i] = Info{Name: d.Name, Version: d.Version, Summary: d.Summary, Path: p, SHA256: sum}
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range paths {
		if failures[i] != nil {
			errs = append(errs, failures[i])
			continue
		}
		if seen[infos[i].Name] {
			continue
		}
		seen[infos[i].Name] = true
		found = append(found, infos[i])
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, errs
}

// DescribeFile returns the description of the plugin binary at path and the binary's
// SHA-256. A binary described before is not started again: descriptions are cached
// by SHA-256 (and protocol version) in the user's cache directory.
func DescribeFile(path string, opt OpenOptions) (Description, string, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return Description{}, "", fmt.Errorf("plugin %s: %v", path, err)
	}
	cache := cachePath(sum)
	if d, ok := readCached(cache); ok {
		return d, sum, nil
	}
	// Pinned, so that the binary described is the one hashed.
	opt.SHA256 = sum
	c, err := Open(path, opt)
	if err != nil {
		return Description{}, "", err
	}
	c.Close()
	if cache != "" {
		// A cache that cannot be written costs the next call a start, nothing more.
		if err := os.MkdirAll(filepath.Dir(cache), 0o700); err == nil {
			_ = atomicfile.WriteJSON(cache, c.Desc)
		}
	}
	return c.Desc, sum, nil
}

// cachePath is where the description of the binary with SHA-256 sum is kept, or ""
// without a user cache directory.
func cachePath(sum string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kadapt", "plugins", fmt.Sprintf("%s.v%d.json", sum, ProtocolVersion))
}

func readCached(path string) (Description, bool) {
	if path == "" {
		return Description{}, false
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Description{}, false
	}
	var d Description
	if json.Unmarshal(raw, &d) != nil || d.Name == "" {
		return Description{}, false // damaged: describe again, which rewrites it
	}
	return d, true
}
