package main

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// A sweep spec is an experiment as a file (docs/sweeps.md): the grid of run
// configurations, each point of which becomes one run directory named by a readable
// prefix and a hash of its effective configuration.
//
//	name: demo
//	runs_dir: runs
//	seeds: [0, 1, 2]              # each sets train.seed and data.fewshot_seed
//	fixed: {data.dataset: mnist-demo, train.epochs: 50}
//	grid: {train.lr: [0.01, 0.001]}
//	methods:
//	  - kadaptation
//	  - {plugin: lora, grid: {hp.rank: [4, 8]}}
//	  - {plugin: kadaptation, name: kadaptation-bias-only, fixed: {hp.kronecker: false}}

//go:embed sweeps/demo.yaml
var demoSpecYAML []byte

// demoSpecName is how the bundled spec is named in messages and job names.
const demoSpecName = "(bundled demo spec: host/sweeps/demo.yaml)"

type sweepSpec struct {
	Source  string           // the file it was read from, for error messages
	Name    string           // job names on clusters; defaults to the file's base name
	RunsDir string           // where the run directories go
	Seeds   []any            // each sets train.seed and data.fewshot_seed; nil: one point
	Fixed   map[string]any   // run keys shared by every point
	Grid    map[string][]any // run keys crossed with the methods
	Methods []methodSpec
}

// methodSpec is one row of the method axis: a plugin with its own settings and grid.
type methodSpec struct {
	Name   string // the run id prefix; defaults to the plugin
	Plugin string
	Fixed  map[string]any
	Grid   map[string][]any
}

// sweepPoint is one run of a sweep.
type sweepPoint struct {
	Index  int            `json:"index"`
	ID     string         `json:"id"`   // the run directory's name
	Hash   string         `json:"hash"` // sha256 of the identity (pointIdentity), hex
	Method string         `json:"method"`
	Values map[string]any `json:"values"` // the point's grid coordinates (seed, grid and method keys)
	Config RunConfig      `json:"config"`
}

// loadSweepSpec reads a spec file.
func loadSweepSpec(path string) (*sweepSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSweepSpec(path, data)
}

func parseSweepSpec(source string, data []byte) (*sweepSpec, error) {
	raw, err := yaml.Parser().Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(raw, "."), nil); err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	sp := &sweepSpec{Source: source, Name: k.String("name"), RunsDir: k.String("runs_dir")}
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", source, fmt.Sprintf(format, a...))
	}
	for _, key := range k.Keys() {
		top, _, _ := strings.Cut(key, ".")
		switch top {
		case "name", "runs_dir", "seeds", "fixed", "grid", "methods":
		default:
			return nil, errf("unknown key %q (a spec has name, runs_dir, seeds, fixed, grid and methods; run keys go under fixed or grid)", key)
		}
	}
	if sp.Name == "" {
		sp.Name = strings.TrimSuffix(filepath.Base(source), filepath.Ext(source))
	}
	if sp.RunsDir == "" {
		sp.RunsDir = "runs"
	}
	if k.Exists("seeds") {
		if sp.Seeds, err = listOf(k.Get("seeds")); err != nil {
			return nil, errf("seeds: %v", err)
		}
	}
	if sp.Fixed, err = runKeys(k.Cut("fixed").All(), "fixed"); err != nil {
		return nil, errf("%v", err)
	}
	if sp.Grid, err = gridKeys(k.Cut("grid").All(), "grid"); err != nil {
		return nil, errf("%v", err)
	}
	methods, ok := k.Get("methods").([]any)
	if !ok || len(methods) == 0 {
		return nil, errf("methods: want a list of plugins (a name, or {plugin, name, fixed, grid})")
	}
	for i, m := range methods {
		where := fmt.Sprintf("methods[%d]", i)
		var ms methodSpec
		switch m := m.(type) {
		case string:
			ms.Plugin = m
		case map[string]any:
			mk := koanf.New(".")
			if err := mk.Load(confmap.Provider(m, "."), nil); err != nil {
				return nil, errf("%s: %v", where, err)
			}
			for _, key := range mk.Keys() {
				top, _, _ := strings.Cut(key, ".")
				if top != "plugin" && top != "name" && top != "fixed" && top != "grid" {
					return nil, errf("%s: unknown key %q (want plugin, name, fixed, grid)", where, key)
				}
			}
			ms.Plugin, ms.Name = mk.String("plugin"), mk.String("name")
			if ms.Fixed, err = runKeys(mk.Cut("fixed").All(), where+".fixed"); err != nil {
				return nil, errf("%v", err)
			}
			if ms.Grid, err = gridKeys(mk.Cut("grid").All(), where+".grid"); err != nil {
				return nil, errf("%v", err)
			}
			for key := range ms.Grid {
				if _, dup := sp.Grid[key]; dup {
					return nil, errf("%s.grid: %q is also in the spec's grid; give it in one place", where, key)
				}
			}
		default:
			return nil, errf("%s: want a plugin name or a map, got %v", where, m)
		}
		if ms.Plugin == "" {
			return nil, errf("%s: no plugin", where)
		}
		if ms.Name == "" {
			ms.Name = ms.Plugin
		}
		if !idPart.MatchString(ms.Name) {
			return nil, errf("%s: name %q: use letters, digits, '.', '_' and '-'", where, ms.Name)
		}
		sp.Methods = append(sp.Methods, ms)
	}
	if sp.Seeds != nil {
		for _, key := range []string{"train.seed", "data.fewshot_seed"} {
			if _, dup := sp.Grid[key]; dup {
				return nil, errf("grid: %q and seeds both set it; give one", key)
			}
		}
	}
	return sp, nil
}

var (
	idPart     = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	notIDChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// runKeys checks that every key is a run configuration key that a spec may set.
func runKeys(m map[string]any, where string) (map[string]any, error) {
	for key := range m {
		switch {
		case key == "plugin":
			return nil, fmt.Errorf("%s: plugin: plugins are the methods list", where)
		case key == "run_id" || key == "runs_dir":
			return nil, fmt.Errorf("%s: %s: a sweep names its runs (give runs_dir at the top of the spec)", where, key)
		case !isRunKey(key):
			return nil, fmt.Errorf("%s: unknown run key %q (see `host config show`)", where, key)
		}
	}
	return m, nil
}

func gridKeys(m map[string]any, where string) (map[string][]any, error) {
	if _, err := runKeys(m, where); err != nil {
		return nil, err
	}
	out := map[string][]any{}
	for key, v := range m {
		vs, err := listOf(v)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %v", where, key, err)
		}
		out[key] = vs
	}
	return out, nil
}

// listOf accepts a list of scalars, or one scalar as a list of one.
func listOf(v any) ([]any, error) {
	vs, ok := v.([]any)
	if !ok {
		vs = []any{v}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("an empty list leaves no points")
	}
	for _, x := range vs {
		switch x.(type) {
		case string, bool, int, int64, float64, uint64:
		default:
			return nil, fmt.Errorf("value %v: want a number, string or boolean", x)
		}
	}
	return vs, nil
}

// combos is the cartesian product of a grid, its keys in sorted order, the last key
// varying fastest.
func combos(g map[string][]any) []map[string]any {
	out := []map[string]any{{}}
	for _, key := range sortedKeys(g) {
		var next []map[string]any
		for _, c := range out {
			for _, v := range g[key] {
				n := make(map[string]any, len(c)+1)
				for kk, vv := range c {
					n[kk] = vv
				}
				n[key] = v
				next = append(next, n)
			}
		}
		out = next
	}
	return out
}

// plan expands the spec into its points: for each combination of the grid, each
// method, each combination of the method's grid, each seed. The order, and so each
// point's index, depends only on the spec.
func (sp *sweepSpec) plan() ([]sweepPoint, error) {
	seeds := sp.Seeds
	if seeds == nil {
		seeds = []any{nil}
	}
	var pts []sweepPoint
	byHash := map[string]int{}
	byID := map[string]int{}
	for _, g := range combos(sp.Grid) {
		for mi, m := range sp.Methods {
			for _, h := range combos(m.Grid) {
				for _, seed := range seeds {
					values := map[string]any{}
					for kk, v := range g {
						values[kk] = v
					}
					for kk, v := range h {
						values[kk] = v
					}
					if seed != nil {
						values["seed"] = seed
					}
					k := koanf.New(".")
					layers := []map[string]any{defaultRunConfig(), sp.Fixed, m.Fixed, g, h, {"plugin": m.Plugin}}
					if seed != nil {
						layers = append(layers, map[string]any{"train.seed": seed, "data.fewshot_seed": seed})
					}
					for _, l := range layers {
						if err := k.Load(confmap.Provider(l, "."), nil); err != nil {
							return nil, err
						}
					}
					rc, err := decodeRunConfig(k, func(key string) string {
						switch {
						case h[key] != nil:
							return fmt.Sprintf("methods[%d].grid", mi)
						case g[key] != nil:
							return "grid"
						case m.Fixed[key] != nil:
							return fmt.Sprintf("methods[%d].fixed", mi)
						case sp.Fixed[key] != nil:
							return "fixed"
						}
						return ""
					})
					if err != nil {
						return nil, fmt.Errorf("%s: methods[%d] (%s) at %s: %v", sp.Source, mi, m.Name, describeValues(values), err)
					}
					p := sweepPoint{Index: len(pts), Method: m.Name, Values: values}
					p.Hash = pointHash(rc)
					p.ID = pointPrefix(m.Name, rc) + "-" + p.Hash[:8]
					rc.RunsDir, rc.RunID = sp.RunsDir, p.ID
					p.Config = rc
					if j, dup := byHash[p.Hash]; dup {
						return nil, fmt.Errorf("%s: points %d and %d are the same run configuration (%s); remove one", sp.Source, j, p.Index, p.ID)
					}
					if j, dup := byID[p.ID]; dup {
						return nil, fmt.Errorf("%s: points %d and %d would share the run id %s", sp.Source, j, p.Index, p.ID)
					}
					byHash[p.Hash], byID[p.ID] = p.Index, p.Index
					pts = append(pts, p)
				}
			}
		}
	}
	return pts, nil
}

func describeValues(v map[string]any) string {
	var parts []string
	for _, key := range sortedKeys(v) {
		parts = append(parts, fmt.Sprintf("%s=%v", key, v[key]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// pointPrefix is the readable part of a run id: method, dataset and seed.
func pointPrefix(method string, rc RunConfig) string {
	ds := notIDChars.ReplaceAllString(rc.Data.Dataset, "_")
	if ds == "" {
		ds = "default"
	}
	seed := "s" + strconv.FormatUint(rc.Train.Seed, 10)
	if uint64(rc.Data.FewShotSeed) != rc.Train.Seed {
		seed += "f" + strconv.Itoa(rc.Data.FewShotSeed)
	}
	p := method + "-" + ds + "-" + seed
	if len(p) > 80 {
		p = p[:80]
	}
	return p
}

// pointHash identifies a run configuration: sha256 over its settings as sorted
// key=value lines, leaving out what cannot change a result — the keys `host report`
// treats as inert when it groups runs (inertKeys: where runs, data and plugins live,
// the run id, workers, the checkpoint interval, the allocation limits) and the device
// index (deviceKind) — so a point keeps its directory when it moves to another runs
// directory or GPU. Settings at their zero value are left out too, so a setting added
// to kadapt later with a zero default changes no id; one that changes results with a
// non-zero default does change them, rightly: runs made without it are other points.
func pointHash(rc RunConfig) string {
	raw, err := json.Marshal(rc)
	if err != nil {
		panic(err) // RunConfig is plain data
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(err)
	}
	flat := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if sub, ok := v.(map[string]any); ok {
			for kk, vv := range sub {
				walk(prefix+kk+".", vv)
			}
			return
		}
		key := strings.TrimSuffix(prefix, ".")
		if inertKeys[key] || v == nil || v == false || v == "" || v == float64(0) {
			return
		}
		if key == "device" {
			v = deviceKind(v.(string))
		}
		b, _ := json.Marshal(v)
		flat[key] = string(b)
	}
	walk("", m)
	h := sha256.New()
	for _, key := range sortedKeys(flat) {
		fmt.Fprintf(h, "%s=%s\n", key, flat[key])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// specYAML writes the spec back as YAML that parseSweepSpec reads to the same points:
// the frozen copy that cluster workers read, so that editing the original after a
// submission cannot change what an index means.
func (sp *sweepSpec) specYAML() ([]byte, error) {
	m := map[string]any{"name": sp.Name, "runs_dir": sp.RunsDir}
	if sp.Seeds != nil {
		m["seeds"] = sp.Seeds
	}
	if len(sp.Fixed) > 0 {
		m["fixed"] = sp.Fixed
	}
	if len(sp.Grid) > 0 {
		m["grid"] = sp.Grid
	}
	var methods []any
	for _, ms := range sp.Methods {
		mm := map[string]any{"plugin": ms.Plugin, "name": ms.Name}
		if len(ms.Fixed) > 0 {
			mm["fixed"] = ms.Fixed
		}
		if len(ms.Grid) > 0 {
			mm["grid"] = ms.Grid
		}
		methods = append(methods, mm)
	}
	m["methods"] = methods
	return yaml.Parser().Marshal(m)
}

// pointAt is point i of the plan, or an error naming the range.
func pointAt(pts []sweepPoint, i int, source string) (sweepPoint, error) {
	if i < 0 || i >= len(pts) {
		return sweepPoint{}, fmt.Errorf("--index %d: %s has %d points (0 to %d)", i, source, len(pts), len(pts)-1)
	}
	return pts[i], nil
}

// contentHash names a file by its content: 8 hex digits of its SHA-256.
func contentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:4])
}
