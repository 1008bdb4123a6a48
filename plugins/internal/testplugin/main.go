// Command testplugin is a minimal method plugin for the SDK's end-to-end tests. Its
// behaviour at start is chosen by $KADAPT_TESTPLUGIN: "hang" never completes the
// handshake, "crash" exits at once, "version" speaks another protocol version, "cookie"
// expects another host's magic cookie, "chatty" prints a line that is no handshake.
// The event "spawn" starts a child process (sleep) that must die with the plugin; the
// event "hang" never returns. Plan with r = 13 fails; with r = 666 the process
// exits in the middle of the call. Each start appends a line to $KADAPT_TESTPLUGIN_LOG.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

type method struct{}

func (method) Describe() plugins.Description {
	return plugins.Description{Name: "testplugin", Version: "0.1", Summary: "LoRA-like test method",
		Hyperparameters: []plugins.Hyperparameter{{Name: "r", Type: "int", Default: "2", Help: "rank"}}}
}

func (method) Plan(bb plan.Backbone, hp plugins.Values) (plan.Plan, error) {
	r := hp.Int("r")
	plugins.Logger().Info("planning", "backbone", bb.Name, "r", r)
	if r == 13 {
		return plan.Plan{}, fmt.Errorf("r = 13 is unlucky")
	}
	if r == 666 {
		os.Exit(2) // dies in the middle of a call
	}
	w := bb.Width
	return plan.Plan{Method: "testplugin", Version: "0.1", Trainable: plan.TrainableSpec{Mode: plan.TrainNone},
		Params: []plan.ParamSpec{
			{Name: "A", Shape: []int{r, w}, Init: plan.Init{Kind: plan.Normal, Std: 0.02}, Scope: plan.PerLayer, Trainable: true},
			{Name: "B", Shape: []int{w, r}, Init: plan.Init{Kind: plan.Zeros}, Scope: plan.PerLayer, Trainable: true},
		},
		Edits: []plan.Edit{{Site: "blocks.*.attn.q", Kind: plan.WeightDelta, Expr: "matmul(B, A)"}}}, nil
}

func (method) Event(e plugins.Event) error {
	switch e.Kind {
	case "fail":
		return fmt.Errorf("event %q refused", e.Kind)
	case "spawn":
		return exec.Command("sleep", "600").Start()
	case "hang":
		select {}
	}
	return nil
}

func main() {
	if log := os.Getenv("KADAPT_TESTPLUGIN_LOG"); log != "" {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, "started")
			f.Close()
		}
	}
	switch os.Getenv("KADAPT_TESTPLUGIN") {
	case "hang":
		time.Sleep(time.Hour)
	case "crash":
		fmt.Fprintln(os.Stderr, "testplugin: crashing on purpose")
		os.Exit(3)
	case "chatty":
		fmt.Println("hello from a program that is not a plugin")
		return
	case "cookie":
		hs := plugins.Handshake
		hs.MagicCookieKey = "SOME_OTHER_HOST_PLUGIN"
		goplugin.Serve(&goplugin.ServeConfig{HandshakeConfig: hs,
			Plugins: goplugin.PluginSet{"method": &plugins.GRPCPlugin{Impl: method{}}}, GRPCServer: goplugin.DefaultGRPCServer})
		return
	case "version":
		hs := plugins.Handshake
		hs.ProtocolVersion = plugins.ProtocolVersion + 1
		goplugin.Serve(&goplugin.ServeConfig{HandshakeConfig: hs,
			Plugins: goplugin.PluginSet{"method": &plugins.GRPCPlugin{Impl: method{}}}, GRPCServer: goplugin.DefaultGRPCServer})
		return
	}
	plugins.Serve(method{})
}
