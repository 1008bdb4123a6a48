package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/host/train"
)

func init() {
	register("pretrain", "pretrain the built-in demo backbone on MNIST digits 0-4 (reproducible from a seed)", cmdPretrain)
}

// demoBackbone is the built-in backbone's architecture: a CLIP-style ViT small enough
// to pretrain and adapt on two CPU cores in minutes.
func demoBackbone() backbones.Config {
	return backbones.Config{Name: "mnist-vit", Family: backbones.CLIP, ImageSize: 28, PatchSize: 4, Channels: 1,
		Width: 64, Layers: 4, Heads: 4, MLPDim: 256, EmbedDim: 32, ActName: "quick_gelu", Eps: 1e-5,
		Mean: [3]float32{mnistMean, mnistMean, mnistMean}, Std: [3]float32{mnistStd, mnistStd, mnistStd}}
}

// pretrainModel trains the whole tower and the head.
type fullModel struct {
	vision *backbones.Vision
	head   *train.Head
}

func (m *fullModel) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return m.vision.Forward(tp, x).Embeds
}
func (m *fullModel) Head() *train.Head { return m.head }
func (m *fullModel) Trainable() []*autograd.Var {
	return append(append([]*autograd.Var(nil), m.vision.Params()...), m.head.Params()...)
}

func cmdPretrain(args []string) error {
	fs := newFlags("pretrain", "pretrain --out FILE.safetensors [--epochs N] [--seed S]")
	out := fs.String("out", "backbones/builtin/mnist-vit.safetensors", "where to write the backbone")
	epochs := fs.Int("epochs", 4, "passes over the 30,596 training images of digits 0-4")
	seed := fs.Uint64("seed", 1, "initialisation and shuffling seed")
	lr := fs.Float64("lr", 2e-3, "AdamW peak learning rate (cosine schedule, one warm-up epoch)")
	batch := fs.Int("batch-size", 128, "batch size")
	limit := fs.Int("limit", 0, "use only the first N training images (0 = all; for quick checks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "pretrain", Output: os.Stderr, Level: hclog.Info})
	b, err := core.OpenBackend("cpu")
	if err != nil {
		return err
	}
	digits := []int{0, 1, 2, 3, 4}
	trainDS, err := mnistDigits(true, digits)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < trainDS.Len() {
		trainDS = trainDS.Subset(trainDS.Samples[:*limit])
	}
	testDS, err := mnistDigits(false, digits)
	if err != nil {
		return err
	}
	trainData, err := mnistTensor(trainDS)
	if err != nil {
		return err
	}
	testData, err := mnistTensor(testDS)
	if err != nil {
		return err
	}
	cfg := demoBackbone()
	vision, err := backbones.NewVision(b, cfg)
	if err != nil {
		return err
	}
	vision.InitRandom(*seed)
	head := train.NewHead(b, cfg.EmbedDim, len(digits))
	head.InitRandom(*seed)
	m := &fullModel{vision: vision, head: head}
	dir, err := os.MkdirTemp("", "kadapt-pretrain-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.Config{Epochs: *epochs, BatchSize: *batch, Optimizer: "adamw", LR: *lr, WeightDecay: 0.05,
		Schedule: "cosine", WarmupEpochs: 1, Select: "last", Seed: *seed}
	log.Info("pretraining", "backbone", cfg.Name, "params", vision.NumParams(), "train_images", trainData.Len(), "epochs", *epochs)
	start := time.Now()
	res, err := train.Run(b, m, train.Task{Train: trainData, Test: testData, Classes: len(digits), Metric: "accuracy"},
		tc, train.Options{Dir: dir, Progress: newProgress(log, false)})
	if err != nil {
		return err
	}
	log.Info("pretrained", "test_accuracy_digits_0_4", fmt.Sprintf("%.4f", res.Score), "elapsed", time.Since(start).Round(time.Second))
	cfgJSON, _ := json.Marshal(cfg)
	meta := map[string]string{
		"kadapt.config":  string(cfgJSON),
		"kadapt.command": "host pretrain " + strings.Join(args, " "),
		"kadapt.note": fmt.Sprintf("pretrained on MNIST digits 0-4 (%d images, %d epochs, seed %d); test accuracy on digits 0-4 %.4f",
			trainData.Len(), *epochs, *seed, res.Score),
	}
	return backbones.SaveVision(vision, *out, meta)
}
