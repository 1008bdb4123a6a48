package linearprobe

import (
	"github.com/kadapt/kadapt/plugins"
	"github.com/kadapt/kadapt/plugins/plan"
)

// Method is the linear probe as a plugin.
type Method struct{ plugins.NoEvents }

// Describe implements plugins.Method.
func (Method) Describe() plugins.Description {
	return plugins.Description{Name: "linearprobe", Version: "1", Summary: "linear probe: only the head trains, on features computed once"}
}

// Plan implements plugins.Method.
func (Method) Plan(bb plan.Backbone, _ plugins.Values) (plan.Plan, error) { return Plan(bb) }
