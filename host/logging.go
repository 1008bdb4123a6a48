package main

import (
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/host/progress"
	"github.com/kadapt/kadapt/plugins"
)

// logLevelEnv sets the log level where --log-level is not given.
const logLevelEnv = plugins.LogLevelEnv

// logLevels are the values --log-level and $KADAPT_LOG_LEVEL take.
var logLevels = []string{"trace", "debug", "info", "warn", "error", "off"}

// logLevel is the level of every logger the commands make (newLogger); logLevelChosen
// says whether the user chose it, so that commands whose quiet mode lowers the
// default (run --quiet) leave a chosen level alone.
var (
	logLevel       = hclog.Info
	logLevelChosen bool
)

// setLogLevel reads --log-level, then $KADAPT_LOG_LEVEL; it runs before every command.
func setLogLevel(cmd *cobra.Command, _ []string) error {
	logLevel, logLevelChosen = hclog.Info, false
	name, source := os.Getenv(logLevelEnv), "$"+logLevelEnv
	if f := cmd.Flags().Lookup("log-level"); f != nil && f.Changed {
		name, source = f.Value.String(), "--log-level"
	}
	if name == "" {
		return nil
	}
	for _, l := range logLevels {
		if strings.EqualFold(name, l) {
			logLevel, logLevelChosen = hclog.LevelFromString(l), true
			return nil
		}
	}
	return usageErr("%s %q: want one of %s", source, name, strings.Join(logLevels, ", "))
}

// newLogger is a command's logger on stderr at the chosen level. It writes through
// the progress display, which prints its lines above any live bar.
func newLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Output: progress.Stderr(),
		Level:  logLevel,
		// go-plugin reports at info that a plugin exited; the host stops its plugins
		// on purpose, so that is news only when debugging (a crash is an error).
		Exclude: func(level hclog.Level, msg string, _ ...any) bool {
			return level == hclog.Info && msg == "plugin process exited" && logLevel > hclog.Debug
		},
	})
}

// quietDefault is the level of a command asked for quiet output: warnings only,
// unless the user chose a level.
func quietDefault(log hclog.Logger) {
	if !logLevelChosen {
		log.SetLevel(hclog.Warn)
	}
}
