// Command finetune is the finetune method plugin; the host starts it.
package main

import (
	"github.com/kadapt/kadapt/methods/finetune"
	"github.com/kadapt/kadapt/plugins"
)

func main() { plugins.ServeMethod(finetune.Method) }
