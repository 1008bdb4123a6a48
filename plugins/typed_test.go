package plugins

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/kadapt/kadapt/plugins/plan"
)

type act string

// allTypes has a field of each supported type, defaults from both places.
type allTypes struct {
	Rank    int      `hp:"rank" help:"the rank" default:"4"`
	Scale   float64  `hp:"scale" help:"a scale"`
	Branch  bool     `hp:"branch" help:"beside, not merged" default:"true"`
	Act     act      `hp:"act" help:"activation"`
	Targets []string `hp:"targets" help:"where" default:" q , v,"`
	Note    string   `hp:"note" help:"free text"`
}

// recorder is a method whose Plan hands its Config back in the plan's notes.
func recorder(got *allTypes) plan.Method[allTypes] {
	return plan.Method[allTypes]{Name: "rec", Version: "3", Summary: "records its config",
		Default: allTypes{Scale: 0.02, Act: "gelu"},
		Plan: func(_ plan.Backbone, c allTypes) (plan.Plan, error) {
			*got = c
			return plan.Plan{Trainable: plan.TrainableSpec{Mode: plan.TrainNone}}, nil
		}}
}

// newRecorder serves recorder as the SDK does and returns where its Plan records the
// Config it was given.
func newRecorder(t *testing.T) (Method, *allTypes) {
	t.Helper()
	got := new(allTypes)
	m, err := NewMethod(recorder(got))
	if err != nil {
		t.Fatal(err)
	}
	return m, got
}

func TestTypedDescription(t *testing.T) {
	m, _ := newRecorder(t)
	want := Description{Name: "rec", Version: "3", Summary: "records its config", Hyperparameters: []Hyperparameter{
		{Name: "rank", Type: "int", Default: "4", Help: "the rank"},
		{Name: "scale", Type: "float", Default: "0.02", Help: "a scale"},
		{Name: "branch", Type: "bool", Default: "true", Help: "beside, not merged"},
		{Name: "act", Type: "string", Default: "gelu", Help: "activation"},
		{Name: "targets", Type: "string", Default: "q,v", Help: "where"},
		{Name: "note", Type: "string", Default: "", Help: "free text"},
	}}
	if d := m.Describe(); !reflect.DeepEqual(d, want) {
		t.Fatalf("description\n%+v\nwant\n%+v", d, want)
	}
	// The description handed out is a copy.
	m.Describe().Hyperparameters[0].Default = "9"
	if m.Describe().Hyperparameters[0].Default != "4" {
		t.Fatal("Describe shares its hyperparameters with callers")
	}
}

// Values a user sets arrive in the Config as the types they name; unset ones are the
// defaults, from the tags or from Method.Default.
func TestTypedValuesRoundTrip(t *testing.T) {
	m, got := newRecorder(t)
	for _, tc := range []struct {
		raw  map[string]string
		want allTypes
	}{
		{nil, allTypes{Rank: 4, Scale: 0.02, Branch: true, Act: "gelu", Targets: []string{"q", "v"}}},
		{map[string]string{"rank": "-7", "scale": "1e-05", "branch": "false", "act": "quick_gelu", "targets": "fc1, out ,,k", "note": " a, b "},
			allTypes{Rank: -7, Scale: 1e-5, Act: "quick_gelu", Targets: []string{"fc1", "out", "k"}, Note: " a, b "}},
		{map[string]string{"scale": "3", "branch": "0", "targets": ""}, allTypes{Rank: 4, Scale: 3, Act: "gelu"}},
	} {
		hp, err := ParseValues(m.Describe(), tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		*got = allTypes{}
		p, err := m.Plan(tiny, hp)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%v: config %#v, want %#v", tc.raw, *got, tc.want)
		}
		if p.Method != "rec" || p.Version != "3" {
			t.Errorf("plan names %q %q, want the method's name and version", p.Method, p.Version)
		}
	}
}

// Unknown and invalid values are errors that name the hyperparameter, whether the
// host (ParseValues) or the plugin (Plan, given values checked against another
// description) finds them.
func TestTypedBadValuesNameTheHyperparameter(t *testing.T) {
	m, _ := newRecorder(t)
	for _, tc := range []struct {
		raw  map[string]string
		want string
	}{
		{map[string]string{"rnak": "2"}, `unknown hyperparameter "rnak" (rec has: rank, scale, branch, act, targets, note)`},
		{map[string]string{"rank": "2.5"}, `hyperparameter "rank": "2.5" is not a valid int`},
		{map[string]string{"scale": "big"}, `hyperparameter "scale": "big" is not a valid float`},
		{map[string]string{"branch": "yes"}, `hyperparameter "branch": "yes" is not a valid bool`},
	} {
		if _, err := ParseValues(m.Describe(), tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.raw, err, tc.want)
		}
	}
	other := func(hs ...Hyperparameter) Values {
		v, err := ParseValues(Description{Name: "rec", Hyperparameters: hs}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	d := m.Describe()
	for _, tc := range []struct {
		hp   Values
		want string
	}{
		{other(d.Hyperparameters[1:]...), `hyperparameter "rank" has no value`},
		{other(append(d.Hyperparameters, Hyperparameter{Name: "extra", Type: "int", Default: "1"})...), `unknown hyperparameter "extra"`},
		{other(append([]Hyperparameter{{Name: "rank", Type: "string", Default: "four"}}, d.Hyperparameters[1:]...)...), `hyperparameter "rank" is declared as string here, not int`},
	} {
		if _, err := m.Plan(tiny, tc.hp); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "rec"`) {
			t.Errorf("error %v, want %q naming the plugin", err, tc.want)
		}
	}
}

// Each Config the SDK cannot serve is refused when the method is made, naming the
// field and what to do.
func TestTypedRefusesConfigs(t *testing.T) {
	refuse := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("accepted")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
	type untagged struct {
		R     int `hp:"r" help:"rank"`
		Alpha float64
	}
	type unsupported struct {
		Ranks []int `hp:"ranks" help:"ranks"`
	}
	type wide struct {
		R int64 `hp:"r" help:"rank"`
	}
	type unexported struct {
		//lint:ignore U1000 a field nothing can set is what the SDK must refuse
		r int `hp:"r" help:"rank"`
	}
	type Embedded struct {
		R int `hp:"r" help:"rank"`
	}
	type embedding struct {
		Embedded
	}
	type twice struct {
		A int `hp:"r" help:"rank"`
		B int `hp:"r" help:"rank again"`
	}
	type badName struct {
		R int `hp:"Rank" help:"rank"`
	}
	type noHelp struct {
		R int `hp:"r"`
	}
	type badDefault struct {
		R int `hp:"r" help:"rank" default:"four"`
	}
	type lossyList struct {
		T []string `hp:"targets" help:"where"`
	}
	type bothDefaults struct {
		R int `hp:"r" help:"rank" default:"4"`
	}
	for _, tc := range []struct {
		name string
		new  func() (Method, error)
		want []string
	}{
		{"untagged field", func() (Method, error) {
			return NewMethod(plan.Method[untagged]{Name: "m", Version: "1", Plan: planOf[untagged]()})
		},
			[]string{`method "m"`, "plugins.untagged", "field Alpha: no hp tag", `Alpha float64 ` + "`" + `hp:"name" help:"what it does"` + "`"}},
		{"unsupported slice", func() (Method, error) {
			return NewMethod(plan.Method[unsupported]{Name: "m", Version: "1", Plan: planOf[unsupported]()})
		}, []string{"field Ranks: type []int is not a hyperparameter type (int, float64, bool, string or []string)"}},
		{"int64", func() (Method, error) {
			return NewMethod(plan.Method[wide]{Name: "m", Version: "1", Plan: planOf[wide]()})
		},
			[]string{"field R: type int64 is not a hyperparameter type"}},
		{"unexported", func() (Method, error) {
			return NewMethod(plan.Method[unexported]{Name: "m", Version: "1", Plan: planOf[unexported]()})
		}, []string{"field r: unexported"}},
		{"embedded", func() (Method, error) {
			return NewMethod(plan.Method[embedding]{Name: "m", Version: "1", Plan: planOf[embedding]()})
		},
			[]string{"field Embedded: embedded fields are not hyperparameters"}},
		{"name twice", func() (Method, error) {
			return NewMethod(plan.Method[twice]{Name: "m", Version: "1", Plan: planOf[twice]()})
		},
			[]string{`field B: hp name "r" is taken by field A too`}},
		{"bad name", func() (Method, error) {
			return NewMethod(plan.Method[badName]{Name: "m", Version: "1", Plan: planOf[badName]()})
		},
			[]string{`field R: hp name "Rank": want lower-case letters`}},
		{"no help", func() (Method, error) {
			return NewMethod(plan.Method[noHelp]{Name: "m", Version: "1", Plan: planOf[noHelp]()})
		},
			[]string{"field R: no help tag"}},
		{"default that does not parse", func() (Method, error) {
			return NewMethod(plan.Method[badDefault]{Name: "m", Version: "1", Plan: planOf[badDefault]()})
		}, []string{`field R: default tag: "four" is not a valid int`}},
		{"list default that does not round-trip", func() (Method, error) {
			return NewMethod(plan.Method[lossyList]{Name: "m", Version: "1", Plan: planOf[lossyList](), Default: lossyList{T: []string{"q,k", "v"}}})
		}, []string{`field T: default []string{"q,k", "v"} does not survive the round trip through "q,k,v"`}},
		{"default in two places", func() (Method, error) {
			return NewMethod(plan.Method[bothDefaults]{Name: "m", Version: "1", Plan: planOf[bothDefaults](), Default: bothDefaults{R: 8}})
		}, []string{`field R: default given twice: tag "4" and 8 in Default`}},
		{"not a struct", func() (Method, error) {
			return NewMethod(plan.Method[int]{Name: "m", Version: "1", Plan: planOf[int]()})
		},
			[]string{"config int: not a struct of hyperparameters"}},
		{"no name", func() (Method, error) { return NewMethod(plan.Method[noHelp]{Version: "1", Plan: planOf[noHelp]()}) },
			[]string{"has no Name"}},
		{"no plan", func() (Method, error) { return NewMethod(plan.Method[untagged]{Name: "m", Version: "1"}) },
			[]string{`method "m" has no Plan function`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.new()
			refuse(t, err, tc.want...)
		})
	}
}

func planOf[C any]() func(plan.Backbone, C) (plan.Plan, error) {
	return func(plan.Backbone, C) (plan.Plan, error) { return plan.Plan{}, nil }
}

// A plan that names another method than the plugin is an error, not a silent rename.
func TestTypedPlanMustNameItsMethod(t *testing.T) {
	type none struct{}
	m, err := NewMethod(plan.Method[none]{Name: "m", Version: "2", Plan: func(plan.Backbone, none) (plan.Plan, error) {
		return plan.Plan{Method: "m", Version: "1"}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	hp, _ := ParseValues(m.Describe(), nil)
	if _, err := m.Plan(tiny, hp); err == nil || !strings.Contains(err.Error(), `plan names method "m" version "1", but the plugin is "m" version "2"`) {
		t.Fatalf("error %v", err)
	}
}

// The typed method travels over the same gRPC service as a hand-written one.
func TestTypedOverGRPC(t *testing.T) {
	m, got := newRecorder(t)
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{pluginName: &GRPCPlugin{Impl: m}})
	defer client.Close()
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	g := raw.(*grpcClient)
	d, err := g.describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, m.Describe()) {
		t.Fatalf("description over gRPC %+v, want %+v", d, m.Describe())
	}
	p, err := g.plan(context.Background(), tiny, map[string]string{"rank": "2", "targets": "k"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Rank != 2 || !reflect.DeepEqual(got.Targets, []string{"k"}) || p.Method != "rec" {
		t.Fatalf("config %+v, plan %+v", *got, p)
	}
	if _, err := g.plan(context.Background(), tiny, map[string]string{"rank": "two"}); err == nil || !strings.Contains(err.Error(), `hyperparameter "rank": "two" is not a valid int`) {
		t.Fatalf("bad value over gRPC: %v", err)
	}
}

// ServeMethod refuses a Config it cannot serve before the handshake: the process
// exits 1 with the reason on stderr, which the host shows as a crash at start.
func TestServeMethodRefusesAtStart(t *testing.T) {
	if os.Getenv("KADAPT_TEST_SERVE_UNTAGGED") == "1" {
		type untagged struct{ Alpha float64 }
		ServeMethod(plan.Method[untagged]{Name: "m", Version: "1", Plan: planOf[untagged]()})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeMethodRefusesAtStart$")
	cmd.Env = append(os.Environ(), "KADAPT_TEST_SERVE_UNTAGGED=1")
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), `plugins: method "m": config plugins.untagged: field Alpha: no hp tag`) {
		t.Fatalf("output does not give the reason:\n%s", out)
	}
}

// The out-of-tree example's README shows its whole main.go; they must not drift apart.
func TestBitFitREADMEShowsTheWholeFile(t *testing.T) {
	src, err := os.ReadFile("../examples/bitfit/main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../examples/bitfit/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Fatal("examples/bitfit/README.md does not show main.go as it is: copy main.go into its go block")
	}
}
