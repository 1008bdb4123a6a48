package plan

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
	// Plan answers the host with the method's plan for a backbone. Plans that leave
	// Method and Version empty get Name and Version.
	Plan func(Backbone, C) (Plan, error)
}
