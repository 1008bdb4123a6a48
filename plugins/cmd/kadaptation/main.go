// Command kadaptation is the kadaptation method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/kadaptation"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(kadaptation.Method) }
