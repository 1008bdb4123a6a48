package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/backbones/builtin"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/datasets"
	"github.com/kadapt/kadapt/datasets/metrics"
	"github.com/kadapt/kadapt/host/data"
	"github.com/kadapt/kadapt/host/train"
)

const demoDataset = "mnist-demo"

// builtinConfig is the architecture of the committed demo backbone.
func builtinConfig() (backbones.Config, error) {
	path, cleanup, err := builtin.Path()
	if err != nil {
		return backbones.Config{}, err
	}
	defer cleanup()
	c, _, err := backbones.InferConfig(path)
	return c, err
}

// weightsDigest is the SHA-256 of the weights file the run loads (the built-in
// backbone's embedded file when there is no --model).
func weightsDigest(rc RunConfig) (string, error) {
	if rc.Model == "" {
		sum := sha256.Sum256(builtin.Bytes())
		return hex.EncodeToString(sum[:]), nil
	}
	path, err := backbones.ResolveWeightsPath(rc.Model)
	if err != nil {
		return "", err
	}
	return fileDigest(path)
}

// fileDigest is the hex SHA-256 of a file's contents.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadRunModel loads --model, or the built-in backbone when none is given.
func loadRunModel(b core.Backend, rc RunConfig) (*backbones.Model, error) {
	if rc.Model == "" {
		path, cleanup, err := builtin.Path()
		if err != nil {
			return nil, err
		}
		defer cleanup()
		return backbones.Open(b, path, backbones.OpenOptions{})
	}
	return backbones.Open(b, rc.Model, backbones.OpenOptions{Config: rc.ModelConfig, Preset: rc.Backbone})
}

// buildTask loads the configured dataset, draws the few-shot training set and the
// paper's validation split, and returns the task with its class names.
func buildTask(rc RunConfig, m *backbones.Model, log hclog.Logger) (train.Task, []string, error) {
	dc := rc.Data
	switch {
	case dc.Augment != "digits" && dc.Augment != "":
		return train.Task{}, nil, usageErr("data.augment %q: want %s", dc.Augment, oneOf(hostChoices["data.augment"]))
	case dc.Dataset == demoDataset:
		return demoTask(dc, rc.Train.Seed, log)
	case dc.Augment == "digits":
		return train.Task{}, nil, usageErr("data.augment digits: the digit distortions apply to the built-in %s task only", demoDataset)
	}
	var trainDS, testDS *datasets.Dataset
	metric := metrics.NameAccuracy
	var err error
	format := dc.Format
	var unknown error // why an automatic format took the dataset for an image folder
	if format == "auto" || format == "" {
		format = "elevater"
		if _, unknown = datasets.Lookup(dc.Dataset); unknown != nil {
			format = "imagefolder"
		}
	}
	if dc.Root == "" && format == "elevater" {
		return train.Task{}, nil, usageErr("--data-root is required for dataset %q", dc.Dataset)
	}
	switch format {
	case "elevater":
		info, err := datasets.Lookup(dc.Dataset)
		if err != nil {
			return train.Task{}, nil, err
		}
		metric = info.Metric
		if trainDS, err = datasets.LoadELEVATER(dc.Root, dc.Dataset, datasets.TrainSplit); err != nil {
			return train.Task{}, nil, err
		}
		if testDS, err = datasets.LoadELEVATER(dc.Root, dc.Dataset, datasets.TestSplit); err != nil {
			return train.Task{}, nil, err
		}
	case "imagefolder":
		root := dc.Root
		if root == "" {
			root = dc.Dataset
		}
		if trainDS, err = datasets.LoadImageFolder(filepath.Join(root, "train")); err != nil {
			if unknown != nil && errors.Is(err, fs.ErrNotExist) {
				// Most often a mistyped registry name: say so, with the nearest names.
				return train.Task{}, nil, fmt.Errorf("%w (nor is it an image folder: there is no %s)", unknown, filepath.Join(root, "train"))
			}
			return train.Task{}, nil, err
		}
		if testDS, err = datasets.LoadImageFolder(filepath.Join(root, "test")); err != nil {
			return train.Task{}, nil, err
		}
	case "cifar10":
		if trainDS, err = datasets.LoadCIFAR10(dc.Root, true); err == nil {
			testDS, err = datasets.LoadCIFAR10(dc.Root, false)
		}
	case "cifar100":
		if trainDS, err = datasets.LoadCIFAR100(dc.Root, true, datasets.FineLabels); err == nil {
			testDS, err = datasets.LoadCIFAR100(dc.Root, false, datasets.FineLabels)
		}
	case "mnist":
		if trainDS, err = datasets.LoadMNISTDir(dc.Root, true); err == nil {
			testDS, err = datasets.LoadMNISTDir(dc.Root, false)
		}
	case "csv":
		if trainDS, err = datasets.LoadManifest(filepath.Join(dc.Root, "train.csv")); err == nil {
			testDS, err = datasets.LoadManifest(filepath.Join(dc.Root, "test.csv"))
		}
	default:
		return train.Task{}, nil, usageErr("data.format %q: want %s", format, oneOf(hostChoices["data.format"]))
	}
	if err != nil {
		return train.Task{}, nil, err
	}
	// The head predicts the training classes; the test split is scored against
	// them, mapped by name, and a test class the training split lacks is an error
	// now rather than a wrong score (or a failure) after training.
	if !slices.Equal(testDS.Classes, trainDS.Classes) {
		if testDS, err = testDS.Relabel(trainDS.Classes); err != nil {
			return train.Task{}, nil, err
		}
		log.Info("test classes mapped by name onto the training classes", "train_classes", len(trainDS.Classes))
	}
	trainSet, valSet, err := fewShotSplits(trainDS, dc)
	if err != nil {
		return train.Task{}, nil, err
	}
	cfg, err := data.PreprocessConfig(m)
	if err != nil {
		return train.Task{}, nil, err
	}
	if vc := m.Vision.Cfg; vc.Channels != 3 {
		return train.Task{}, nil, fmt.Errorf("backbone %s takes %d-channel input; image datasets give RGB", vc.Name, vc.Channels)
	}
	task := train.Task{Train: data.NewImages(trainSet, cfg, dc.Workers), Test: data.NewImages(testDS, cfg, dc.Workers),
		Classes: len(trainDS.Classes), MultiLabel: trainDS.MultiLabel, Metric: metric}
	if valSet != nil {
		task.Val = data.NewImages(valSet, cfg, dc.Workers)
	}
	return task, trainDS.Classes, nil
}

// fewShotSplits applies the protocol: k images per class drawn as vision-datasets
// does, then the first ⌈frac·n_c⌉ per class held out for validation.
func fewShotSplits(ds *datasets.Dataset, dc DataConfig) (trainSet, valSet *datasets.Dataset, err error) {
	trainSet = ds
	if dc.Shots > 0 {
		if trainSet, err = ds.FewShot(dc.Shots, dc.FewShotSeed); err != nil {
			return nil, nil, err
		}
	}
	if dc.ValFraction > 0 {
		return trainSet.SplitVal(dc.ValFraction)
	}
	return trainSet, nil, nil
}

// demoTask is the built-in transfer task: the backbone was pretrained on digits 0–4;
// adapt it to digits 5–9 from a few images per class and test on every test image of
// those digits.
func demoTask(dc DataConfig, seed uint64, log hclog.Logger) (train.Task, []string, error) {
	digits := []int{5, 6, 7, 8, 9}
	trainAll, err := data.MNISTDigits(true, digits)
	if err != nil {
		return train.Task{}, nil, err
	}
	testDS, err := data.MNISTDigits(false, digits)
	if err != nil {
		return train.Task{}, nil, err
	}
	trainSet, valSet, err := fewShotSplits(trainAll, dc)
	if err != nil {
		return train.Task{}, nil, err
	}
	task := train.Task{Classes: len(digits), Metric: metrics.NameAccuracy}
	trainData, err := data.MNISTPixels(trainSet)
	if err != nil {
		return task, nil, err
	}
	task.Train = trainData
	if dc.Augment == "digits" {
		task.Train = &data.Augmented{Mem: trainData, Aug: data.DigitAugmentation, Seed: seed, Side: data.MNISTSide,
			Background: (0 - data.MNISTMean) / data.MNISTStd}
	}
	if valSet != nil {
		if task.Val, err = data.MNISTPixels(valSet); err != nil {
			return task, nil, err
		}
	}
	if task.Test, err = data.MNISTPixels(testDS); err != nil {
		return task, nil, err
	}
	return task, trainAll.Classes, nil
}

// initHead initialises the head from the text tower when there is one (the paper's
// recipe), else as head_init says, and returns the initialisation it applied:
// head_init text falls back to zeros for a backbone without a text tower (the
// built-in one), and final.json records what happened.
func initHead(h *train.Head, rc RunConfig, m *backbones.Model, names []string, task train.Task, log hclog.Logger) (string, error) {
	mode := rc.HeadInit
	// Without a text tower the head starts at zero: every method then begins as the
	// same classifier, and no backbone gradient flows through a random head before it
	// has learnt anything (on a development demo backbone, a random head left KAdaptation
	// at 22% on one few-shot seed where the linear probe had 60%; a zero head's first
	// step is already a class-mean classifier).
	if mode == "text" && (m.Text == nil || len(names) != task.Classes) {
		if rc.Data.Templates != "" {
			return "", usageErr("--templates (data.templates) %s: the backbone has no text tower to embed prompts with", rc.Data.Templates)
		}
		log.Info("no text tower to initialise the head from; starting it at zero", "head_init", "zeros")
		mode = "zeros"
	}
	switch mode {
	case "text":
		tok, err := loadTokenizer(m)
		if err != nil {
			return "", fmt.Errorf("head_init text (the default) embeds the class names with the model's tokenizer, or pass --head-init zeros: %v", err)
		}
		var tf *datasets.TemplateFile
		if rc.Data.Templates != "" {
			if tf, err = datasets.LoadTemplates(rc.Data.Templates); err != nil {
				return "", err
			}
		}
		prompts, err := tf.ClassNames(rc.Data.Dataset, names)
		if err != nil {
			return "", err
		}
		w, err := backbones.ClassEmbeddings(m.Text, tok, prompts, tf.For(rc.Data.Dataset))
		if err != nil {
			return "", err
		}
		h.InitFromText(w)
	case "zeros":
		h.W.Value.Backend().Fill(h.W.Value, 0)
		h.B.Value.Backend().Fill(h.B.Value, 0)
	case "random":
		h.InitRandom(rc.Train.Seed)
	default:
		return "", usageErr("head_init %q: want %s", rc.HeadInit, oneOf(hostChoices["head_init"]))
	}
	return mode, nil
}
