package plugins

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRelayedFields(t *testing.T) {
	cases := []struct {
		name     string
		in, want []any
	}{
		{"go-plugin's additions", []any{"@module", "lora", "r", 8, "timestamp", "2026-01-01T00:00:00.000Z"}, []any{"r", 8}},
		{"a plugin's own timestamp field stays", []any{"timestamp", "x", "r", 8}, []any{"timestamp", "x", "r", 8}},
		{"a dangling value stays", []any{"r", 8, "odd"}, []any{"r", 8, "odd"}},
		{"nothing", nil, []any{}},
	}
	for _, c := range cases {
		if got := relayedFields(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: relayedFields(%v) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
}

// TestRelayLoggerNamesTheMethodOnce relays a line as go-plugin does (a sublogger
// named after the binary, the plugin's fields plus @module and timestamp).
func TestRelayLoggerNamesTheMethodOnce(t *testing.T) {
	var buf bytes.Buffer
	host := hclog.New(&hclog.LoggerOptions{Name: "host", Output: &buf, DisableTime: true})
	relayLogger{host}.Named(FilePrefix+"lora").Info("planning", "@module", "lora", "r", 8, "timestamp", "2026-12-07T01:02:03.000Z")
	if got, want := strings.TrimSpace(buf.String()), "[INFO]  host.lora: planning: r=8"; got != want {
		t.Fatalf("relayed %q, want %q", got, want)
	}
}
