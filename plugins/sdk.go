package plugins

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/kadapt/kadapt/plugins/plan"
)

// ProtocolVersion is bumped whenever the wire contract (kadapt.proto or the JSON of the
// plan types) changes incompatibly; go-plugin refuses mismatched pairs at start.
const ProtocolVersion = 1

// Handshake is shared by the host and every plugin. The cookie keeps a plugin binary
// from doing anything when a user runs it by hand.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "KADAPT_PLUGIN",
	MagicCookieValue: "7c1f0a4e-kadapt-method-plugin-5b2d",
}

// pluginName is the key of the one plugin kind in go-plugin's plugin map.
const pluginName = "method"

// Hyperparameter documents one of a method's settings.
type Hyperparameter struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // int | float | bool | string
	Default string `json:"default"`
	Help    string `json:"help"`
}

// Description is what `host plugins show` prints.
type Description struct {
	Name            string           `json:"name"`
	Version         string           `json:"version"`
	Summary         string           `json:"summary"`
	Hyperparameters []Hyperparameter `json:"hyperparameters"`
}

// Event is a lifecycle notification: run_start, run_end or final_metrics.
type Event struct {
	Kind    string          `json:"kind"`
	RunID   string          `json:"run_id"`
	Payload json.RawMessage `json:"payload"`
}

// Method is implemented by every adaptation method.
type Method interface {
	Describe() Description
	Plan(bb plan.Backbone, hp Values) (plan.Plan, error)
	Event(e Event) error
}

// NoEvents ignores lifecycle events; embed it in methods that do not need them.
type NoEvents struct{}

// Event implements Method.
func (NoEvents) Event(Event) error { return nil }

// Values are a method's hyperparameters, checked against its Description: every name
// is declared and every value parses as its type. Missing values take the default.
type Values struct {
	method string
	types  map[string]string
	values map[string]string
}

// ParseValues checks raw against d and fills in defaults. The error names the method
// and each offending hyperparameter.
func ParseValues(d Description, raw map[string]string) (Values, error) {
	v := Values{method: d.Name, types: map[string]string{}, values: map[string]string{}}
	var problems []string
	for _, h := range d.Hyperparameters {
		v.types[h.Name] = h.Type
		v.values[h.Name] = h.Default
	}
	var names []string
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		typ, ok := v.types[name]
		if !ok {
			var known []string
			for _, h := range d.Hyperparameters {
				known = append(known, h.Name)
			}
			problems = append(problems, fmt.Sprintf("unknown hyperparameter %q (%s has: %s)", name, d.Name, strings.Join(known, ", ")))
			continue
		}
		if err := checkType(typ, raw[name]); err != nil {
			problems = append(problems, fmt.Sprintf("hyperparameter %q: %v", name, err))
			continue
		}
		v.values[name] = raw[name]
	}
	if len(problems) > 0 {
		return Values{}, fmt.Errorf("plugin %q: %s", d.Name, strings.Join(problems, "; "))
	}
	return v, nil
}

func checkType(typ, s string) error {
	var err error
	switch typ {
	case "int":
		_, err = strconv.Atoi(s)
	case "float":
		_, err = strconv.ParseFloat(s, 64)
	case "bool":
		_, err = strconv.ParseBool(s)
	case "string":
	default:
		return fmt.Errorf("declared with unknown type %q", typ)
	}
	if err != nil {
		return fmt.Errorf("%q is not a valid %s", s, typ)
	}
	return nil
}

// Raw returns the values as strings, defaults included.
func (v Values) Raw() map[string]string {
	out := make(map[string]string, len(v.values))
	for k, s := range v.values {
		out[k] = s
	}
	return out
}

// The typed accessors panic on a name the Description does not declare (a bug in the
// method, not in user input, which ParseValues has already checked).
func (v Values) get(name, typ string) string {
	t, ok := v.types[name]
	if !ok || t != typ {
		panic(fmt.Sprintf("plugin %q: hyperparameter %q is not declared as %s", v.method, name, typ))
	}
	return v.values[name]
}

// Int returns an int hyperparameter.
func (v Values) Int(name string) int {
	n, _ := strconv.Atoi(v.get(name, "int"))
	return n
}

// Float returns a float hyperparameter.
func (v Values) Float(name string) float64 {
	f, _ := strconv.ParseFloat(v.get(name, "float"), 64)
	return f
}

// Bool returns a bool hyperparameter.
func (v Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v.get(name, "bool"))
	return b
}

// String returns a string hyperparameter.
func (v Values) String(name string) string { return v.get(name, "string") }

// List splits a string hyperparameter at commas.
func (v Values) List(name string) []string { return splitList(v.String(name)) }

// splitList is how a list travels as one string: comma-separated, blanks around
// elements and empty elements dropped.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// lookup returns a hyperparameter's declared type and value.
func (v Values) lookup(name string) (typ, value string, ok bool) {
	typ, ok = v.types[name]
	return typ, v.values[name], ok
}

// names lists the declared hyperparameters, sorted.
func (v Values) names() []string {
	out := make([]string, 0, len(v.types))
	for name := range v.types {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

var logger hclog.Logger = hclog.NewNullLogger()

// Logger is the plugin's logger inside Serve: JSON lines on stderr that go-plugin
// relays into the host's log under the plugin's name.
func Logger() hclog.Logger { return logger }

// Serve runs m as a plugin process; a method's main calls it and nothing else. The
// process exits by itself, with the processes it started, when its host dies.
func Serve(m Method) {
	logger = hclog.New(&hclog.LoggerOptions{Name: m.Describe().Name, JSONFormat: true, Output: os.Stderr, Level: hclog.LevelFromString(os.Getenv(LogLevelEnv))})
	exitWithHost()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{pluginName: &GRPCPlugin{Impl: m}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
