// Command lora is the lora method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/lora"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(lora.Method) }
