package datasets

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

var (
	pathHeaders  = map[string]bool{"path": true, "file": true, "filename": true, "file_name": true, "filepath": true, "image": true, "image_path": true, "img": true, "source": true}
	labelHeaders = map[string]bool{"label": true, "labels": true, "class": true, "class_name": true, "category": true, "target": true, "y": true}
)

// LoadManifest reads a CSV or TSV manifest of `path,label` rows. The delimiter is a
// tab for .tsv/.tab files and for files whose first line has a tab but no comma,
// else a comma; CSV quoting works as usual and lines starting with # are comments.
//
// A first row whose path field is a usual column name (path, file, image …) or
// whose label field is one (label, class …) while its path has no image extension
// is a header and skipped. A label cell holds one label, or several separated by
// ";" (which makes the dataset multi-label; an empty cell is an image without
// labels). Labels are class indices when every label in the file is a
// non-negative integer, with classes "0" up to the largest; otherwise they are
// class names, indexed in sorted order as ImageFolder does. Paths are relative to
// the manifest's folder unless absolute, and may name zip members ("a.zip@x.jpg").
func LoadManifest(file string) (*Dataset, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	comma := ','
	switch strings.ToLower(filepath.Ext(file)) {
	case ".tsv", ".tab":
		comma = '\t'
	default:
		first, _ := br.Peek(4096)
		if i := strings.IndexByte(string(first), '\n'); i >= 0 {
			first = first[:i]
		}
		if strings.Contains(string(first), "\t") && !strings.Contains(string(first), ",") {
			comma = '\t'
		}
	}
	r := csv.NewReader(br)
	r.Comma = comma
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true

	type row struct {
		line   int
		path   string
		labels []string
	}
	var rows []row
	for n := 0; ; n++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("datasets: %s:%d: %w", file, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("datasets: %s: %w", file, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != 2 {
			return nil, fmt.Errorf("datasets: %s:%d: %d fields, want 2 (path, label)", file, line, len(rec))
		}
		path, cell := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if n == 0 && isHeader(path, cell) {
			continue
		}
		if path == "" {
			return nil, fmt.Errorf("datasets: %s:%d: empty path", file, line)
		}
		var labels []string
		if cell != "" {
			for _, l := range strings.Split(cell, ";") {
				l = strings.TrimSpace(l)
				if l == "" {
					return nil, fmt.Errorf("datasets: %s:%d: empty label in %q", file, line, cell)
				}
				labels = append(labels, l)
			}
		}
		rows = append(rows, row{line: line, path: path, labels: labels})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("datasets: manifest %s lists no images", file)
	}

	numeric := true
	multiLabel := false
	for _, rw := range rows {
		multiLabel = multiLabel || len(rw.labels) != 1
		for _, l := range rw.labels {
			if v, err := strconv.Atoi(l); err != nil || v < 0 {
				numeric = false
			}
		}
	}
	var classes []string
	index := map[string]int{}
	if numeric {
		top := -1
		for _, rw := range rows {
			for _, l := range rw.labels {
				v, _ := strconv.Atoi(l)
				if v >= MaxClasses {
					return nil, fmt.Errorf("datasets: %s:%d: label %d implies more than %d classes", file, rw.line, v, MaxClasses)
				}
				top = max(top, v)
			}
		}
		classes = numberedClasses(top + 1)
	} else {
		for _, rw := range rows {
			for _, l := range rw.labels {
				index[l] = 0
			}
		}
		for name := range index {
			classes = append(classes, name)
		}
		sort.Strings(classes)
		for i, name := range classes {
			index[name] = i
		}
	}

	dir := filepath.Dir(file)
	samples := make([]Sample, len(rows))
	for i, rw := range rows {
		source := rw.path
		if !filepath.IsAbs(rw.path) {
			source = filepath.Join(dir, filepath.FromSlash(rw.path))
		}
		labels := make([]int, len(rw.labels))
		for j, l := range rw.labels {
			if numeric {
				labels[j], _ = strconv.Atoi(l)
			} else {
				labels[j] = index[l]
			}
		}
		samples[i] = Sample{Source: source, Labels: labels}
	}
	name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	return newFileDataset(name, classes, multiLabel, samples), nil
}

func isHeader(path, label string) bool {
	p, l := strings.ToLower(path), strings.ToLower(label)
	return pathHeaders[p] || (labelHeaders[l] && !IsImageFile(path))
}
