// Command adapter is the adapter method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/adapter"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(adapter.Method) }
