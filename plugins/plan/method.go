package plan

import "fmt"

// Method is an adaptation method as a method package declares it: everything the
// plugin SDK (plugins.ServeMethod) needs to serve it, typed in this package so that a
// method's package imports plan alone.
//
// C is the method's configuration, a struct whose every field is one hyperparameter,
// declared by struct tags:
//
//	R       int      `hp:"r" help:"rank"`
//	Targets []string `hp:"targets" help:"projections to adapt" default:"q,v"`
//
// hp is the name users set with --hp NAME=VALUE, help says what it does, and default
// is its default written as a user would set it. A field's type is int, float64,
// bool, string or []string (a comma-separated list); they reach the host as the
// hyperparameter types int, float, bool, string and string.
type Method[C any] struct {
	Name    string // the plugin's name: kadapt-plugin-<Name>, --plugin <Name>
	Version string
	Summary string // one line for `host plugins`
	// Default is the configuration of a run that sets nothing, for methods that keep
	// their defaults in a Go value. A field with a default tag takes the tag's value
	// and must be left zero here, so that each default is written in one place.
	Default C
	// Plan answers the host with the method's plan for a backbone. It leaves the
	// plan's Method and Version empty: Build fills them in from Name and Version.
	Plan func(Backbone, C) (Plan, error)
}

// Build is the plan the host gets: Plan's, named by Name and Version, which are
// written once, here. A plan that names another method or version is an error. The
// SDK serves Build; tests that call a method in process call it too.
func (m Method[C]) Build(bb Backbone, c C) (Plan, error) {
	p, err := m.Plan(bb, c)
	if err != nil {
		return Plan{}, err
	}
	if p.Method == "" && p.Version == "" {
		p.Method, p.Version = m.Name, m.Version
	}
	if p.Method != m.Name || p.Version != m.Version {
		return Plan{}, fmt.Errorf("plan names method %q version %q, but the plugin is %q version %q", p.Method, p.Version, m.Name, m.Version)
	}
	return p, nil
}
