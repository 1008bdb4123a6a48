package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/kadapt/kadapt/plugins/plan"
)

var tiny = plan.StandardViT(plan.ViTConfig{Name: "tiny", Layers: 2, Width: 8, Heads: 2, MLPDim: 16, Patch: 4, Image: 8, EmbedDim: 6})

// inProcess is a Method served over go-plugin's in-memory gRPC harness.
type inProcess struct{ NoEvents }

func (inProcess) Describe() Description {
	return Description{Name: "inproc", Version: "2", Summary: "s",
		Hyperparameters: []Hyperparameter{{Name: "scale", Type: "float", Default: "0.5", Help: "h"}, {Name: "on", Type: "bool", Default: "true"}}}
}

func (inProcess) Plan(bb plan.Backbone, hp Values) (plan.Plan, error) {
	return plan.Plan{Method: "inproc", Version: "2", Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Params: []plan.ParamSpec{{Name: "g", Shape: []int{bb.Width}, Init: plan.Init{Kind: plan.Ones}, Scope: plan.Shared, Trainable: hp.Bool("on")}},
		Edits:  []plan.Edit{{Site: "blocks.*.mlp", Kind: plan.ModuleAfter, Expr: "h * g"}},
		Notes:  hp.Raw()["scale"]}, nil
}

func TestInProcessRoundTrip(t *testing.T) {
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{pluginName: &GRPCPlugin{Impl: inProcess{}}})
	defer client.Close()
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	g := raw.(*grpcClient)
	ctx := context.Background()
	d, err := g.describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "inproc" || len(d.Hyperparameters) != 2 || d.Hyperparameters[0].Default != "0.5" {
		t.Fatalf("description %+v", d)
	}
	p, err := g.plan(ctx, tiny, map[string]string{"scale": "0.25", "on": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Notes != "0.25" || p.Params[0].Trainable || p.Edits[0].Expr != "h * g" {
		t.Fatalf("plan %+v did not carry the hyperparameters", p)
	}
	if _, err := g.plan(ctx, tiny, map[string]string{"scale": "lots"}); err == nil || !strings.Contains(err.Error(), `"scale"`) {
		t.Fatalf("bad value: %v", err)
	} else if strings.Contains(err.Error(), "rpc error") || strings.Contains(err.Error(), "code =") {
		t.Fatalf("the plugin's error reached the host wrapped in gRPC's status text: %v", err)
	}
	if err := g.event(ctx, Event{Kind: "run_start", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestParseValues(t *testing.T) {
	d := inProcess{}.Describe()
	v, err := ParseValues(d, map[string]string{"on": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Float("scale") != 0.5 || v.Bool("on") {
		t.Fatalf("values %v", v.Raw())
	}
	for _, tc := range []struct {
		raw  map[string]string
		want string
	}{
		{map[string]string{"scal": "1"}, `unknown hyperparameter "scal" (inproc has: scale, on)`},
		{map[string]string{"on": "maybe"}, `hyperparameter "on": "maybe" is not a valid bool`},
	} {
		if _, err := ParseValues(d, tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "inproc"`) {
			t.Errorf("%v: error %v, want it to contain %q and name the plugin", tc.raw, err, tc.want)
		}
	}
}

var (
	testPluginOnce sync.Once
	testPluginBin  string
	testPluginErr  error
)

// buildTestPlugin compiles internal/testplugin once per test binary and returns a copy
// of it alone in a fresh directory.
func buildTestPlugin(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain on PATH to build the test plugin")
	}
	testPluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kadapt-testplugin-")
		if err != nil {
			testPluginErr = err
			return
		}
		testPluginBin = filepath.Join(dir, "testplugin")
		if out, err := exec.Command("go", "build", "-o", testPluginBin, "./internal/testplugin").CombinedOutput(); err != nil {
			testPluginErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if testPluginErr != nil {
		t.Fatalf("building the test plugin: %v", testPluginErr)
	}
	data, err := os.ReadFile(testPluginBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), FilePrefix+"testplugin")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestRealPluginProcess(t *testing.T) {
	bin := buildTestPlugin(t)
	defer CleanupClients()

	t.Run("plan", func(t *testing.T) {
		c, err := Open(bin, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Describe().Name != "testplugin" {
			t.Fatalf("description %+v", c.Describe())
		}
		p, err := c.Plan(tiny, map[string]string{"r": "3"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := plan.CountTrainable(p, tiny)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(2 * 2 * 3 * 8); n != want {
			t.Fatalf("%d trainable, want %d", n, want)
		}
		if _, err := c.Plan(tiny, map[string]string{"r": "13"}); err == nil || !strings.Contains(err.Error(), "unlucky") || !strings.Contains(err.Error(), "testplugin") {
			t.Fatalf("plugin error not relayed with the plugin's name: %v", err)
		} else if want := fmt.Sprintf("plugin %q (%s): plan: r = 13 is unlucky", "testplugin", bin); err.Error() != want {
			t.Fatalf("plugin error reads\n  %v\nwant\n  %s", err, want)
		}
		if _, err := c.Plan(tiny, map[string]string{"rank": "3"}); err == nil || !strings.Contains(err.Error(), `unknown hyperparameter "rank"`) {
			t.Fatalf("unknown hyperparameter: %v", err)
		}
		if err := c.Event("fail", nil); err == nil {
			t.Fatal("a refused event did not return an error")
		}
	})

	t.Run("dies mid-call", func(t *testing.T) {
		c, err := Open(bin, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Plan(tiny, map[string]string{"r": "666"})
		if err == nil || !strings.Contains(err.Error(), "the plugin process exited") || strings.Contains(err.Error(), "rpc error") {
			t.Fatalf("error %v, want it to say the plugin exited, without gRPC's wrapping", err)
		}
	})

	t.Run("sha256 pin", func(t *testing.T) {
		data, _ := os.ReadFile(bin)
		sum := sha256.Sum256(data)
		c, err := Open(bin, OpenOptions{SHA256: hex.EncodeToString(sum[:])})
		if err != nil {
			t.Fatalf("correct pin refused: %v", err)
		}
		c.Close()
		sum[0] ^= 1
		if _, err := Open(bin, OpenOptions{SHA256: hex.EncodeToString(sum[:])}); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("wrong pin: %v", err)
		}
	})

	for _, tc := range []struct{ mode, want string }{
		{"hang", "did not complete the handshake"},
		{"crash", "crashed at start"},
		{"version", "protocol version mismatch"},
		{"cookie", "not a kadapt plugin"},
		{"chatty", "not a kadapt plugin"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv("KADAPT_TESTPLUGIN", tc.mode)
			start := time.Now()
			_, err := Open(bin, OpenOptions{StartTimeout: 2 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), bin) {
				t.Fatalf("error %v, want it to name the plugin and say %q", err, tc.want)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("took %s: the host must not hang on a bad plugin", time.Since(start))
			}
		})
	}

	t.Run("find", func(t *testing.T) {
		dir := filepath.Dir(bin)
		p, err := Find("testplugin", []string{filepath.Join(dir, "missing"), dir})
		if err != nil || p != bin {
			t.Fatalf("Find: %q %v", p, err)
		}
		// A mistyped name is told the plugins there are, by file name, each once.
		if _, err := Find("nothing", []string{dir, dir}); err == nil || !strings.Contains(err.Error(), "kadapt-plugin-nothing") ||
			!strings.Contains(err.Error(), "; plugins there: testplugin (build") {
			t.Fatalf("Find of a missing plugin: %v", err)
		}
		if _, err := Find("nothing", []string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "plugins there: none") {
			t.Fatalf("Find in an empty folder: %v", err)
		}
	})
}

// TestDiscover lays out a plugin directory with a plugin, a file under another name
// that must never run, a plugin that hangs at start, one whose file name and
// description disagree, and checks what discovery makes of it: in parallel, within
// its deadline, from its cache the second time, again after the binary changed.
func TestDiscover(t *testing.T) {
	bin := buildTestPlugin(t)
	dir := filepath.Dir(bin)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	starts := filepath.Join(t.TempDir(), "starts")
	t.Setenv("KADAPT_TESTPLUGIN_LOG", starts)
	marker := filepath.Join(t.TempDir(), "impostor-ran")
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("impostor", "#!/bin/sh\ntouch "+marker+"\n")
	write("notes.txt", "not a plugin")
	write(FilePrefix+"hung", "#!/bin/sh\nsleep 30\n")
	data, _ := os.ReadFile(bin)
	// The copy differs by a trailing byte (not the 0 the rebuild below appends): with the same SHA-256 it could be served from
	// the description cache the real binary fills while both are described in parallel,
	// and the count of starts below would depend on which finished first.
	write(FilePrefix+"misnamed", string(data)+"\x01")
	discover := func() ([]Info, []error) {
		return Discover([]string{dir, filepath.Join(dir, "missing")}, OpenOptions{StartTimeout: 2 * time.Second})
	}
	countStarts := func() int {
		data, _ := os.ReadFile(starts)
		return strings.Count(string(data), "\n")
	}

	found, errs := discover()
	if len(found) != 1 || found[0].Name != "testplugin" || found[0].Path != bin || len(found[0].SHA256) != 64 {
		t.Fatalf("found %+v", found)
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	if len(errs) != 2 || !strings.Contains(all, FilePrefix+"hung") || !strings.Contains(all, `describes itself as "testplugin"`) {
		t.Fatalf("errors:\n%s\nwant one for the hung plugin and one for the misnamed one", all)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("discovery ran a file not named as a plugin")
	}
	if n := countStarts(); n != 2 {
		t.Fatalf("the test plugin started %d times, want 2 (itself and its misnamed copy)", n)
	}

	if found, _ := discover(); len(found) != 1 || found[0].Version != "0.1" {
		t.Fatalf("second discovery found %+v", found)
	}
	if n := countStarts(); n != 2 {
		t.Fatalf("the second discovery started plugins again (%d starts): the cache was not used", n)
	}
	if err := os.WriteFile(bin, append(data, 0), 0o755); err != nil { // a rebuilt binary
		t.Fatal(err)
	}
	if found, _ := discover(); len(found) != 1 {
		t.Fatalf("after a rebuild found %+v", found)
	}
	if n := countStarts(); n != 3 {
		t.Fatalf("after the binary changed the plugin started %d times in all, want 3", n)
	}
}

// TestHungEventIsDropped sends an event the plugin never answers: it is dropped
// after the event deadline, and later events are dropped without waiting.
func TestHungEventIsDropped(t *testing.T) {
	bin := buildTestPlugin(t)
	c, err := Open(bin, OpenOptions{EventTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Event("run_start", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Event("hang", nil); err == nil || !strings.Contains(err.Error(), "no answer within 500ms") {
		t.Fatalf("hung event: %v", err)
	}
	start := time.Now()
	if err := c.Event("run_end", nil); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("event after a hung one: %v", err)
	}
	if waited := time.Since(start); waited >= 500*time.Millisecond {
		t.Fatalf("the event after a hung one waited %s for the plugin", waited)
	}
	// Plans still work: a hung event callback does not stop the method.
	if _, err := c.Plan(tiny, nil); err != nil {
		t.Fatal(err)
	}
}
