// Command linearprobe is the linearprobe method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/linearprobe"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(linearprobe.Method) }
