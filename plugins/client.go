package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kadapt/kadapt/plugins/plan"
)

// DefaultStartTimeout bounds how long a plugin may take to complete the handshake.
const DefaultStartTimeout = 10 * time.Second

// DefaultCallTimeout bounds a Describe or Plan call, so a hung plugin cannot hang
// the host.
const DefaultCallTimeout = 60 * time.Second

// DefaultEventTimeout bounds a lifecycle event. Events are notifications the run does
// not depend on: one that times out is dropped with the error, and so are the
// plugin's later events, so a plugin hung in its callback costs a run this once.
const DefaultEventTimeout = 5 * time.Second

// OpenOptions configure Open.
type OpenOptions struct {
	Logger       hclog.Logger  // the plugin's log lines are relayed here
	SHA256       string        // hex digest the binary must have (go-plugin SecureConfig); empty: no pin
	StartTimeout time.Duration // 0: DefaultStartTimeout
	CallTimeout  time.Duration // 0: DefaultCallTimeout
	EventTimeout time.Duration // 0: DefaultEventTimeout
}

// socketDirPrefix names the private directories of plugin sockets.
const socketDirPrefix = "kadapt-plugin-socket-"

// hostPIDEnv tells a plugin which process is its host (see exitWithHost).
const hostPIDEnv = "KADAPT_HOST_PID"

// Client is a running plugin.
type Client struct {
	Path      string
	Desc      Description
	pc        *plugin.Client
	rpc       *grpcClient
	cmd       *exec.Cmd
	socketDir string // private to the user; holds the plugin's unix socket
	closeOnce sync.Once
	opt       OpenOptions
	// eventsLost is set once an event timed out: the plugin is hung in its callback,
	// and later events are dropped at once.
	eventsLost atomic.Bool
}

// live lists the clients not yet closed, for CleanupClients.
var live = struct {
	sync.Mutex
	clients map[*Client]bool
}{clients: map[*Client]bool{}}

// Open starts the plugin binary at path, completes the handshake and reads its
// description. Every failure names the path.
func Open(path string, opt OpenOptions) (*Client, error) {
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = DefaultStartTimeout
	}
	if opt.CallTimeout == 0 {
		opt.CallTimeout = DefaultCallTimeout
	}
	if opt.EventTimeout == 0 {
		opt.EventTimeout = DefaultEventTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("plugin %s: %v", path, err)
	}
	// go-plugin puts the socket in $TMPDIR, reachable by anyone who can guess its
	// name; in a directory of mode 0700 only this user can connect.
	socketDir, err := os.MkdirTemp("", socketDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: a private socket directory: %v", path, err)
	}
	cmd := exec.Command(path)
	// The host's environment first, then ours, so ours win (SkipHostEnv below keeps
	// go-plugin from appending the host's again after them).
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", hostPIDEnv, os.Getpid()), plugin.EnvUnixSocketDir+"="+socketDir,
		LogLevelEnv+"="+opt.Logger.GetLevel().String()) // the plugin logs what the host shows

	ownGroup(cmd)
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{pluginName: &GRPCPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     opt.StartTimeout,
		Logger:           relayLogger{opt.Logger}, // go-plugin names it after the binary
		Managed:          true,                    // CleanupClients kills it
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	}
	if opt.SHA256 != "" {
		sum, err := hex.DecodeString(strings.TrimSpace(opt.SHA256))
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("plugin %s: pinned SHA-256 %q is not 64 hex digits", path, opt.SHA256)
		}
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	pc := plugin.NewClient(cfg)
	c := &Client{Path: path, pc: pc, cmd: cmd, socketDir: socketDir, opt: opt}
	live.Lock()
	live.clients[c] = true
	live.Unlock()
	rpcClient, err := pc.Client()
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("plugin %s: %s", path, explainStart(err, opt.StartTimeout))
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("plugin %s: %v", path, err)
	}
	c.rpc = raw.(*grpcClient)
	ctx, cancel := context.WithTimeout(context.Background(), opt.CallTimeout)
	defer cancel()
	if c.Desc, err = c.rpc.describe(ctx); err != nil {
		c.abort()
		return nil, fmt.Errorf("plugin %s: describe: %v", path, err)
	}
	if c.Desc.Name == "" {
		c.abort()
		return nil, fmt.Errorf("plugin %s: describes itself without a name", path)
	}
	return c, nil
}

// explainStart turns go-plugin's start errors into advice.
func explainStart(err error, timeout time.Duration) string {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return "its SHA-256 does not match the pinned checksum (rebuilt or replaced binary?)"
	case strings.Contains(strings.ToLower(msg), "incompatible api version") || strings.Contains(strings.ToLower(msg), "incompatible core api version"):
		return fmt.Sprintf("protocol version mismatch (host speaks %d): rebuild the plugin against this kadapt: %v", ProtocolVersion, err)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Sprintf("did not complete the handshake within %s (hung at start?)", timeout)
	case strings.Contains(msg, "exited before we could connect") || strings.Contains(msg, "Unrecognized remote plugin message"):
		return "exited or printed something else before the handshake: not a kadapt plugin, or it crashed at start (" + msg + ")"
	}
	return msg
}

// Describe returns the plugin's description (read once at Open).
func (c *Client) Describe() Description { return c.Desc }

// Plan validates hp against the description, asks the plugin for its plan on bb and
// validates the plan against bb.
func (c *Client) Plan(bb plan.Backbone, hp map[string]string) (plan.Plan, error) {
	values, err := ParseValues(c.Desc, hp)
	if err != nil {
		return plan.Plan{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.CallTimeout)
	defer cancel()
	p, err := c.rpc.plan(ctx, bb, values.Raw())
	if err != nil {
		return plan.Plan{}, fmt.Errorf("plugin %q (%s): plan: %v", c.Desc.Name, c.Path, err)
	}
	if err := plan.Validate(p, bb); err != nil {
		return plan.Plan{}, err
	}
	return p, nil
}

// Event sends a lifecycle event with a JSON payload, within OpenOptions.EventTimeout;
// the error says when it was dropped.
func (c *Client) Event(kind string, payload any) error {
	if c.eventsLost.Load() {
		return fmt.Errorf("plugin %q: event %q dropped: the plugin did not answer an earlier event within %s", c.Desc.Name, kind, c.opt.EventTimeout)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.EventTimeout)
	defer cancel()
	err = c.rpc.event(ctx, Event{Kind: kind, Payload: raw})
	// The plugin's side may expire the call (grpc-timeout) before ctx's own timer.
	if ctx.Err() == context.DeadlineExceeded || status.Code(err) == codes.DeadlineExceeded {
		c.eventsLost.Store(true)
		return fmt.Errorf("plugin %q: event %q dropped: no answer within %s (later events are dropped too)", c.Desc.Name, kind, c.opt.EventTimeout)
	}
	return err
}

// Close stops the plugin process and every process it started, and removes its
// socket directory. It may be called more than once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.pc.Kill()
		if c.cmd.Process != nil {
			killGroup(c.cmd.Process.Pid)
		}
		os.RemoveAll(c.socketDir)
		live.Lock()
		delete(live.clients, c)
		live.Unlock()
	})
}

// abort stops a plugin that failed to start or answer: its whole process group at
// once, since whatever it started may hold the pipes go-plugin waits on.
func (c *Client) abort() {
	if c.cmd.Process != nil {
		killGroup(c.cmd.Process.Pid)
	}
	c.Close()
}

// CleanupClients stops every plugin the host started and not yet closed; the host's
// main defers it, so every way out of the host runs it.
func CleanupClients() {
	live.Lock()
	var cs []*Client
	for c := range live.clients {
		cs = append(cs, c)
	}
	live.Unlock()
	for _, c := range cs {
		c.Close()
	}
	plugin.CleanupClients()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
