package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's Dependencies section names every module go.mod requires directly,
// with its role; a new requirement without a line there fails here.
func TestREADMEListsEveryDirectDependency(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Dependencies\n")
	if !ok {
		t.Fatal("README.md has no ## Dependencies section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var direct []string
	inBlock := false
	for _, line := range strings.Split(string(gomod), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "require (":
			inBlock = true
		case line == ")":
			inBlock = false
		case strings.Contains(line, "// indirect"):
		case inBlock:
			direct = append(direct, strings.Fields(line)[0])
		case strings.HasPrefix(line, "require "):
			direct = append(direct, strings.Fields(line)[1])
		}
	}
	if len(direct) < 10 {
		t.Fatalf("found %d direct requirements in go.mod; the parse is off", len(direct))
	}
	major := regexp.MustCompile(`/v[0-9]+$`)
	for _, m := range direct {
		// Named without github.com/, with or without the major-version suffix; a family of modules
		// (koanf's providers) may be named once by its first two path elements.
		short := strings.TrimPrefix(m, "github.com/")
		found := strings.Contains(section, "`"+short+"`")
		parts := strings.Split(major.ReplaceAllString(short, ""), "/")
		for n := len(parts); n >= 2 && !found; n-- {
			found = strings.Contains(section, "`"+strings.Join(parts[:n], "/")+"`")
		}
		if !found {
			t.Errorf("go.mod requires %s, which README.md's Dependencies section does not name", m)
		}
	}
	if !strings.Contains(section, "gorgonia.org/cu") {
		t.Error("README.md's Dependencies section no longer says why gorgonia.org/cu is not used")
	}
}
