package main

import (
	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// method is what the host needs from an adaptation method: a plan for a backbone, and
// lifecycle events. The plugin client implements it over go-plugin.
type method interface {
	Describe() plugins.Description
	Plan(bb plan.Backbone, hp map[string]string) (plan.Plan, error)
	Event(kind string, payload any) error
	Close()
}
