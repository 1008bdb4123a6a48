package plugins

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kadapt/kadapt/plugins/plan"
	"github.com/kadapt/kadapt/plugins/proto"
)

// GRPCPlugin is the go-plugin glue: the server side wraps a Method in the gRPC
// service, the client side turns the service back into a Method.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Method
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterMethodServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{c: proto.NewMethodClient(c)}, nil
}

// server adapts a Method to the generated service.
type server struct {
	proto.UnimplementedMethodServer
	impl Method
}

func (s *server) Describe(context.Context, *proto.DescribeRequest) (*proto.DescribeResponse, error) {
	d := s.impl.Describe()
	r := &proto.DescribeResponse{Name: d.Name, Version: d.Version, Summary: d.Summary}
	for _, h := range d.Hyperparameters {
		r.Hyperparameters = append(r.Hyperparameters, &proto.Hyperparameter{Name: h.Name, Type: h.Type, Default: h.Default, Help: h.Help})
	}
	return r, nil
}

func (s *server) Plan(_ context.Context, req *proto.PlanRequest) (*proto.PlanResponse, error) {
	var bb plan.Backbone
	if err := json.Unmarshal(req.BackboneJson, &bb); err != nil {
		return nil, fmt.Errorf("backbone description: %v", err)
	}
	hp, err := ParseValues(s.impl.Describe(), req.Hyperparameters)
	if err != nil {
		return nil, err
	}
	p, err := s.impl.Plan(bb, hp)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &proto.PlanResponse{PlanJson: raw}, nil
}

func (s *server) Event(_ context.Context, req *proto.EventRequest) (*proto.EventResponse, error) {
	return &proto.EventResponse{}, s.impl.Event(Event{Kind: req.Kind, RunID: req.RunId, Payload: req.PayloadJson})
}

// grpcClient is the host's view of a plugin.
type grpcClient struct{ c proto.MethodClient }

func (g *grpcClient) describe(ctx context.Context) (Description, error) {
	r, err := g.c.Describe(ctx, &proto.DescribeRequest{})
	if err != nil {
		return Description{}, fromRPC(err)
	}
	d := Description{Name: r.Name, Version: r.Version, Summary: r.Summary}
	for _, h := range r.Hyperparameters {
		d.Hyperparameters = append(d.Hyperparameters, Hyperparameter{Name: h.Name, Type: h.Type, Default: h.Default, Help: h.Help})
	}
	return d, nil
}

func (g *grpcClient) plan(ctx context.Context, bb plan.Backbone, hp map[string]string) (plan.Plan, error) {
	raw, err := json.Marshal(bb)
	if err != nil {
		return plan.Plan{}, err
	}
	r, err := g.c.Plan(ctx, &proto.PlanRequest{BackboneJson: raw, Hyperparameters: hp})
	if err != nil {
		return plan.Plan{}, fromRPC(err)
	}
	var p plan.Plan
	if err := json.Unmarshal(r.PlanJson, &p); err != nil {
		return plan.Plan{}, fmt.Errorf("plan from plugin: %v", err)
	}
	return p, nil
}

func (g *grpcClient) event(ctx context.Context, e Event) error {
	_, err := g.c.Event(ctx, &proto.EventRequest{Kind: e.Kind, RunId: e.RunID, PayloadJson: e.Payload})
	return fromRPC(err)
}

// fromRPC turns a gRPC status back into the error the user should read. A method's
// own error crosses the wire as codes.Unknown with its text as the message: that text
// is the whole story, and "rpc error: code = Unknown desc = " in front of it is noise.
// Transport failures say what happened to the plugin instead. The status stays
// reachable through errors.As/status.Code (Event tells a deadline by it).
func fromRPC(err error) error {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	var msg string
	switch s.Code() {
	case codes.Unknown:
		msg = s.Message()
	case codes.Unavailable:
		msg = "the plugin process exited or closed its connection (" + s.Message() + ")"
	case codes.DeadlineExceeded:
		msg = "no answer in time (" + s.Message() + ")"
	case codes.Canceled:
		msg = "cancelled (" + s.Message() + ")"
	case codes.Unimplemented:
		msg = "the plugin does not implement this call; rebuild it against this kadapt (" + s.Message() + ")"
	default:
		msg = s.Code().String() + ": " + s.Message()
	}
	return &rpcError{msg: msg, status: s}
}

// rpcError reads as the plugin's message and still answers status.Code.
type rpcError struct {
	msg    string
	status *status.Status
}

func (e *rpcError) Error() string              { return e.msg }
func (e *rpcError) GRPCStatus() *status.Status { return e.status }
