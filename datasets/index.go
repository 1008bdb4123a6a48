package datasets

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxLineBytes bounds one line of an index, labelmap or manifest file.
const maxLineBytes = 1 << 20

// MaxClasses bounds the class count a data file may imply through its labels
// (ImageNet-21k has 21,841). Without a labelmap the classes are "0" up to the
// largest label, so one label of 10¹² would otherwise allocate 10¹² names.
const MaxClasses = 1 << 20

// resolveLocal joins a dataset-relative image reference ("dir/x.jpg" or
// "train.zip@dir/x.jpg") to dir. References must stay inside dir: index files
// arrive from the network and must not point the loader at arbitrary files.
func resolveLocal(dir, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("empty image path")
	}
	file, member, isZip := splitZipSource(ref)
	if !isZip {
		file = ref
	}
	if !filepath.IsLocal(filepath.FromSlash(file)) {
		return "", fmt.Errorf("image path %q leaves the dataset folder", ref)
	}
	if isZip {
		if member == "" {
			return "", fmt.Errorf("image path %q names no zip member", ref)
		}
		return filepath.Join(dir, filepath.FromSlash(file)) + "@" + member, nil
	}
	return filepath.Join(dir, filepath.FromSlash(file)), nil
}

// scanLines calls fn with each line of file and its 1-based number. The error
// names the file and line.
func scanLines(file string, fn func(line string, n int) error) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(sc.Text(), n); err != nil {
			return fmt.Errorf("datasets: %s:%d: %w", file, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("datasets: %s:%d: %w", file, n+1, err)
	}
	return nil
}

// ReadLabelmap reads a vision-datasets labelmap (labels.txt): one class name per
// line, surrounding white space removed, blank lines skipped.
func ReadLabelmap(file string) ([]string, error) {
	var names []string
	err := scanLines(file, func(line string, _ int) error {
		if s := strings.TrimSpace(line); s != "" {
			names = append(names, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("datasets: labelmap %s names no classes", file)
	}
	return names, nil
}

// parseLabels parses a comma-separated list of 0-based class indices.
func parseLabels(field string, numClasses int) ([]int, error) {
	parts := strings.Split(field, ",")
	labels := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("label %q is not an integer", p)
		}
		if v < 0 || (numClasses > 0 && v >= numClasses) {
			if numClasses > 0 {
				return nil, fmt.Errorf("label %d out of range [0, %d)", v, numClasses)
			}
			return nil, fmt.Errorf("label %d is negative", v)
		}
		if v >= MaxClasses {
			return nil, fmt.Errorf("label %d implies more than %d classes", v, MaxClasses)
		}
		labels = append(labels, v)
	}
	return labels, nil
}

// LoadIndex reads a vision-datasets image-classification index: one image per line,
// `<zip>@<path/in/zip> <comma-separated 0-based labels>` (or a plain relative file
// path instead of the zip reference), paths relative to the index file's folder.
// As in vision-datasets the line is split at its last space, so only the path may
// contain spaces. labelmapFile names the classes; with "" the classes are "0" up to
// the largest label seen. A multi-class index needs exactly one label per line; a
// multi-label one allows any number, none included.
func LoadIndex(indexFile, labelmapFile string, multiLabel bool) (*Dataset, error) {
	var classes []string
	if labelmapFile != "" {
		var err error
		if classes, err = ReadLabelmap(labelmapFile); err != nil {
			return nil, err
		}
	}
	dir := filepath.Dir(indexFile)
	var samples []Sample
	maxLabel := -1
	err := scanLines(indexFile, func(line string, _ int) error {
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		ref, field := line, ""
		if i := strings.LastIndexByte(line, ' '); i >= 0 {
			ref, field = strings.TrimSpace(line[:i]), line[i+1:]
		}
		source, err := resolveLocal(dir, ref)
		if err != nil {
			return err
		}
		var labels []int
		if field != "" {
			if labels, err = parseLabels(field, len(classes)); err != nil {
				return err
			}
		}
		if !multiLabel && len(labels) != 1 {
			return fmt.Errorf("multi-class index line has %d labels, want 1", len(labels))
		}
		for _, l := range labels {
			maxLabel = max(maxLabel, l)
		}
		samples = append(samples, Sample{Source: source, Labels: labels})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("datasets: index %s lists no images", indexFile)
	}
	if classes == nil {
		classes = numberedClasses(maxLabel + 1)
	}
	name := strings.TrimSuffix(filepath.Base(indexFile), filepath.Ext(indexFile))
	return newFileDataset(name, classes, multiLabel, samples), nil
}

func numberedClasses(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return names
}

type cocoManifest struct {
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		ZipFile  string `json:"zip_file"`
	} `json:"images"`
	Annotations []struct {
		ImageID    int64 `json:"image_id"`
		CategoryID int64 `json:"category_id"`
	} `json:"annotations"`
	Categories []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
}

// lineOf converts a byte offset into a 1-based line number.
func lineOf(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// LoadCOCO reads the COCO-style classification manifest some vision-datasets
// datasets use instead of an index (kitti-distance, resisc45_clip, hateful-memes):
// images with file_name "zip@path" (or "path" plus a zip_file field), annotations
// with image_id and category_id. Classes are the categories sorted by id, so the
// usual ids 1..C become labels 0..C−1; images are ordered by id. This is what
// vision-datasets' CocoManifestAdaptor does.
func LoadCOCO(file string, multiLabel bool) (*Dataset, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	var m cocoManifest
	if err := json.Unmarshal(data, &m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("datasets: %s:%d: %w", file, lineOf(data, se.Offset), err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("datasets: %s:%d: field %s: %w", file, lineOf(data, te.Offset), te.Field, err)
		}
		return nil, fmt.Errorf("datasets: %s: %w", file, err)
	}
	if len(m.Categories) == 0 {
		return nil, fmt.Errorf("datasets: %s: no categories", file)
	}
	if len(m.Images) == 0 {
		return nil, fmt.Errorf("datasets: %s: no images", file)
	}
	cats := m.Categories
	sort.SliceStable(cats, func(i, j int) bool { return cats[i].ID < cats[j].ID })
	classes := make([]string, len(cats))
	labelOf := make(map[int64]int, len(cats))
	for i, c := range cats {
		if _, dup := labelOf[c.ID]; dup {
			return nil, fmt.Errorf("datasets: %s: category id %d appears twice", file, c.ID)
		}
		labelOf[c.ID] = i
		classes[i] = c.Name
	}
	dir := filepath.Dir(file)
	type img struct {
		id     int64
		sample Sample
	}
	imgs := make([]img, len(m.Images))
	pos := make(map[int64]int, len(m.Images))
	for i, im := range m.Images {
		if _, dup := pos[im.ID]; dup {
			return nil, fmt.Errorf("datasets: %s: images[%d]: id %d appears twice", file, i, im.ID)
		}
		pos[im.ID] = i
		ref := im.FileName
		if im.ZipFile != "" {
			ref = im.ZipFile + "@" + im.FileName
		}
		source, err := resolveLocal(dir, ref)
		if err != nil {
			return nil, fmt.Errorf("datasets: %s: images[%d] (id %d): %w", file, i, im.ID, err)
		}
		imgs[i] = img{id: im.ID, sample: Sample{Source: source}}
	}
	for i, a := range m.Annotations {
		p, ok := pos[a.ImageID]
		if !ok {
			return nil, fmt.Errorf("datasets: %s: annotations[%d]: image_id %d is not among the images", file, i, a.ImageID)
		}
		l, ok := labelOf[a.CategoryID]
		if !ok {
			return nil, fmt.Errorf("datasets: %s: annotations[%d]: category_id %d is not among the categories", file, i, a.CategoryID)
		}
		imgs[p].sample.Labels = append(imgs[p].sample.Labels, l)
	}
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].id < imgs[j].id })
	samples := make([]Sample, len(imgs))
	for i, im := range imgs {
		if !multiLabel && len(im.sample.Labels) != 1 {
			return nil, fmt.Errorf("datasets: %s: multi-class image id %d has %d annotations, want 1",
				file, im.id, len(im.sample.Labels))
		}
		samples[i] = im.sample
	}
	name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	return newFileDataset(name, classes, multiLabel, samples), nil
}
