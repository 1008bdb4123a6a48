package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/host/peft"
)

// applyPeftAdapter merges a peft LoRA adapter folder into the tower.
func applyPeftAdapter(v *backbones.Vision, dir string) error {
	a, err := peft.Load(dir)
	if err != nil {
		return err
	}
	return a.Apply(v)
}

// exportPeft writes a LoRA run's adapter in peft's format. Rank, alpha and targets
// are read back from the compiled plan: r from lora_A's shape, alpha from the scale
// that leads each edit's expression ("<alpha/r> * matmul(...)").
func exportPeft(r *restoredRun, dir string) error {
	rank := 0
	targets := map[string]bool{}
	re := regexp.MustCompile(`^adapt\.blocks\.\d+\.(\w+)\.lora_A$`)
	for _, p := range r.adapted.Params {
		if m := re.FindStringSubmatch(p.Name); m != nil {
			rank = p.Shape()[0]
			targets[m[1]] = true
		}
	}
	if rank == 0 || len(r.plan.Edits) == 0 {
		return fmt.Errorf("%s: the plan has no LoRA parameters to export", dir)
	}
	scale, err := strconv.ParseFloat(strings.Fields(r.plan.Edits[0].Expr)[0], 64)
	if err != nil {
		return fmt.Errorf("the LoRA plan's expression %q does not start with its scale", r.plan.Edits[0].Expr)
	}
	var order []string
	for _, t := range []string{"q", "k", "v", "out", "fc1", "fc2"} {
		if targets[t] {
			order = append(order, t)
		}
	}
	return peft.Export(filepath.Clean(dir), r.adapted.Params, rank, scale*float64(rank), order, "CLIPVisionModelWithProjection")
}
