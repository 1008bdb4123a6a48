package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// imageExtensions are the file types Image can decode. torchvision's ImageFolder
// also lists .ppm, .pgm and .tif; the first two have no Go decoder and are skipped.
var imageExtensions = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true,
	".bmp": true, ".webp": true, ".tif": true, ".tiff": true,
}

// IsImageFile reports whether name has an extension Image can decode (case-insensitive).
func IsImageFile(name string) bool {
	return imageExtensions[strings.ToLower(filepath.Ext(name))]
}

// LoadImageFolder reads the torchvision ImageFolder layout: one sub-folder per
// class under dir, class indices in sorted folder-name order, and within a class
// every image file found below its folder, ordered as torchvision orders them
// (folders by path, then files by name), so indices and sample order match a
// PyTorch run on the same tree.
//
// Unlike torchvision, names starting with "." are skipped (editor and notebook
// droppings such as .ipynb_checkpoints would otherwise become classes), and
// symbolic links to folders are not followed, which rules out cycles.
func LoadImageFolder(dir string) (*Dataset, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("datasets: image folder: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("datasets: image folder %s has no class sub-folders", dir)
	}
	sort.Strings(classes)
	var samples []Sample
	var empty []string
	for label, class := range classes {
		files, err := imageFilesBelow(filepath.Join(dir, class))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			empty = append(empty, class)
		}
		for _, f := range files {
			samples = append(samples, Sample{Source: f, Labels: []int{label}})
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("datasets: image folder %s: no image files for classes %s (extensions %s)",
			dir, strings.Join(empty, ", "), strings.Join(sortedKeys(imageExtensions), " "))
	}
	return newFileDataset(filepath.Base(filepath.Clean(dir)), classes, false, samples), nil
}

// imageFilesBelow lists image files under root in the order of torchvision's
// make_dataset: `for root, _, fnames in sorted(os.walk(dir)): for f in sorted(fnames)`.
func imageFilesBelow(root string) ([]string, error) {
	var dirs []string
	files := map[string][]string{}
	var walk func(string) error
	walk = func(d string) error {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("datasets: image folder: %w", err)
		}
		dirs = append(dirs, d)
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			p := filepath.Join(d, name)
			switch {
			case e.IsDir():
				if err := walk(p); err != nil {
					return err
				}
			case e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0:
				if !IsImageFile(name) {
					continue
				}
				if e.Type()&os.ModeSymlink != 0 {
					if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
						continue
					}
				}
				files[d] = append(files[d], name)
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	sort.Strings(dirs)
	var out []string
	for _, d := range dirs {
		names := files[d]
		sort.Strings(names)
		for _, n := range names {
			out = append(out, filepath.Join(d, n))
		}
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
