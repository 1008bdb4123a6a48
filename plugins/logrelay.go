package plugins

import (
	"strings"

	"github.com/hashicorp/go-hclog"
)

// LogLevelEnv holds the log level of the host (and of the plugins it starts, which
// log no lower than the host shows).
const LogLevelEnv = "KADAPT_LOG_LEVEL"

// relayLogger is the logger go-plugin gets. go-plugin re-logs each JSON line of a
// plugin's hclog output under a sublogger named after the binary, adding the plugin's
// timestamp as a field and keeping hclog's @module (the plugin logger's name). The
// host's own line already says both, so the relay drops them and names the sublogger
// after the method (lora, not kadapt-plugin-lora): one time, one name per line.
type relayLogger struct{ hclog.Logger }

func (l relayLogger) Named(name string) hclog.Logger {
	return relayLogger{l.Logger.Named(strings.TrimPrefix(name, FilePrefix))}
}

func (l relayLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, relayedFields(args)...)
}
func (l relayLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, relayedFields(args)...) }
func (l relayLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, relayedFields(args)...) }
func (l relayLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, relayedFields(args)...) }
func (l relayLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, relayedFields(args)...) }
func (l relayLogger) Error(msg string, args ...any) { l.Logger.Error(msg, relayedFields(args)...) }

// relayedFields drops the fields go-plugin adds to a relayed line: @module anywhere,
// and the timestamp it appends last.
func relayedFields(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		key, _ := args[i].(string)
		if i+1 < len(args) && (key == "@module" || key == "timestamp" && i+2 == len(args)) {
			continue
		}
		out = append(out, args[i:min(i+2, len(args))]...)
	}
	return out
}
