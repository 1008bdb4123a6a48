package main

import (
	"fmt"

	"github.com/kadapt/kadapt/backbones"
)

func applyPeftAdapter(v *backbones.Vision, dir string) error {
	return fmt.Errorf("--adapter %s: peft adapters are not supported yet", dir)
}

func exportPeft(r *restoredRun, dir string) error {
	return fmt.Errorf("peft export is not supported yet")
}
