package datasets

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TemplateFile is a user-supplied prompt file (JSON or YAML):
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

// LoadTemplates reads and checks a template file; errors name the file and key.
func LoadTemplates(path string) (*TemplateFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	t := &TemplateFile{Path: path}
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		err = dec.Decode(t)
	} else {
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		err = dec.Decode(t)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", path, err)
	}
	keys := make([]string, 0, len(t.Templates))
	for k := range t.Templates {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(t.Templates[k]) == 0 {
			return nil, fmt.Errorf("datasets: %s: templates.%s is empty", path, k)
		}
		for i, tmpl := range t.Templates[k] {
			if strings.Count(tmpl, "{}") != 1 {
				return nil, fmt.Errorf("datasets: %s: templates.%s[%d] = %q needs exactly one {} for the class name", path, k, i, tmpl)
			}
		}
	}
	return t, nil
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
