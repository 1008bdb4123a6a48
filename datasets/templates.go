package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TemplateFile is a user-supplied prompt file (JSON or YAML). Its simplest form maps
// dataset names to template lists:
//
//	cifar-10: ["a photo of a {}.", "a blurry photo of a {}."]
//	"*": ["a photo of a {}."]     # every dataset not named
//
// The full form adds class-name overrides:
//
//	templates:            # dataset name → templates; "*" for every other dataset
//	  cifar-10: ["a photo of a {}.", "a blurry photo of a {}."]
//	  "*": ["a photo of a {}."]
//	classes:              # optional: names to put into the templates instead of the labelmap's
//	  cifar-10: [airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck]
//
// It is how ELEVATER's own template sets reach kadapt without being bundled.
type TemplateFile struct {
	Path      string              `json:"-" yaml:"-"`
	Templates map[string][]string `json:"templates" yaml:"templates"`
	Classes   map[string][]string `json:"classes" yaml:"classes"`
}

// maxTemplateFile bounds what LoadTemplates reads: a prompt file is kilobytes, so
// anything this large is a wrong path, not a template set.
const maxTemplateFile = 16 << 20

// LoadTemplates reads and checks a template file (JSON when the name ends in .json,
// YAML otherwise). Every key must be a registered dataset name or "*", every
// template must hold exactly one {}, and class-name overrides must be non-empty;
// errors name the file and the key.
func LoadTemplates(path string) (*TemplateFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: template file: %w", err)
	}
	if st.Size() > maxTemplateFile {
		return nil, fmt.Errorf("datasets: %s: %d bytes is too large for a template file (limit %d)", path, st.Size(), maxTemplateFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: template file: %w", err)
	}
	isJSON := strings.HasSuffix(strings.ToLower(path), ".json")
	decode := func(v any) error {
		if isJSON {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			return dec.Decode(v)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err := dec.Decode(v)
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file")
		}
		return err
	}
	// The top-level keys tell the two forms apart.
	var top map[string]any
	if err := decode(&top); err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", path, err)
	}
	t := &TemplateFile{Path: path}
	_, full := top["templates"]
	if _, ok := top["classes"]; ok {
		full = true
	}
	// Check the shapes on the generic tree first, so a wrong value is reported
	// with its key rather than as a Go type mismatch.
	if full {
		for _, section := range []string{"templates", "classes"} {
			v, ok := top[section]
			if !ok {
				continue
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("datasets: %s: %s must map dataset names to lists", path, section)
			}
			if err := checkStringLists(section+".", m); err != nil {
				return nil, fmt.Errorf("datasets: %s: %v", path, err)
			}
		}
		err = decode(t)
	} else {
		if err := checkStringLists("", top); err != nil {
			return nil, fmt.Errorf("datasets: %s: %v", path, err)
		}
		err = decode(&t.Templates)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", path, err)
	}
	if len(t.Templates) == 0 && len(t.Classes) == 0 {
		return nil, fmt.Errorf("datasets: %s: neither templates nor classes given", path)
	}
	for _, k := range slices.Sorted(maps.Keys(t.Templates)) {
		if err := checkKey(k, true); err != nil {
			return nil, fmt.Errorf("datasets: %s: templates.%s: %v", path, k, err)
		}
		if len(t.Templates[k]) == 0 {
			return nil, fmt.Errorf("datasets: %s: templates.%s is empty", path, k)
		}
		for i, tmpl := range t.Templates[k] {
			if strings.Count(tmpl, "{}") != 1 {
				return nil, fmt.Errorf("datasets: %s: templates.%s[%d] = %q needs exactly one {} for the class name", path, k, i, tmpl)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.Classes)) {
		if err := checkKey(k, false); err != nil {
			return nil, fmt.Errorf("datasets: %s: classes.%s: %v", path, k, err)
		}
		if len(t.Classes[k]) == 0 {
			return nil, fmt.Errorf("datasets: %s: classes.%s is empty", path, k)
		}
		for i, name := range t.Classes[k] {
			if strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("datasets: %s: classes.%s[%d] is blank", path, k, i)
			}
		}
	}
	return t, nil
}

// checkStringLists reports the first key (in sorted order) whose value is not a
// list of strings.
func checkStringLists(prefix string, m map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		list, ok := m[k].([]any)
		if !ok {
			return fmt.Errorf("%s%s must be a list of strings, not %T", prefix, k, m[k])
		}
		for i, e := range list {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("%s%s[%d] must be a string, not %T", prefix, k, i, e)
			}
		}
	}
	return nil
}

// checkKey accepts registered dataset names (and "*" where a fallback makes
// sense), so a misspelt key is reported instead of silently never applying.
func checkKey(k string, wildcard bool) error {
	if wildcard && k == "*" {
		return nil
	}
	if _, err := Lookup(k); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "datasets: "))
	}
	return nil
}

// For returns the templates of a dataset: its own, else "*", else DefaultTemplates.
// A nil file gives DefaultTemplates.
func (t *TemplateFile) For(dataset string) []string {
	if t != nil {
		if ts, ok := t.Templates[dataset]; ok {
			return ts
		}
		if ts, ok := t.Templates["*"]; ok {
			return ts
		}
	}
	return DefaultTemplates
}

// ClassNames returns the names to put into the templates: the file's override for the
// dataset, else the labelmap's names.
func (t *TemplateFile) ClassNames(dataset string, labelmap []string) ([]string, error) {
	if t == nil || t.Classes[dataset] == nil {
		return labelmap, nil
	}
	names := t.Classes[dataset]
	if len(names) != len(labelmap) {
		return nil, fmt.Errorf("datasets: %s: classes.%s has %d names, the dataset has %d classes", t.Path, dataset, len(names), len(labelmap))
	}
	return names, nil
}
