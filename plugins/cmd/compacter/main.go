// Command compacter is the compacter method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/compacter"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(compacter.Method) }
