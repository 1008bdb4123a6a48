package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kadapt/kadapt/backbones"
	"github.com/kadapt/kadapt/core"
	"github.com/kadapt/kadapt/core/autograd"
	"github.com/kadapt/kadapt/core/optim"
	"github.com/kadapt/kadapt/datasets/metrics"
	"github.com/kadapt/kadapt/host/data"
	"github.com/kadapt/kadapt/host/train"
)

func init() {
	addCommand(newPretrainCmd)
}

// demoBackbone is the built-in backbone's architecture: a CLIP-style ViT small enough
// to pretrain and adapt on two CPU cores in minutes. Patches of 7×7 (16 tokens and the
// class token) cost a third of what 4×4 patches (49) did, for features that transfer
// better within the same pretraining time.
func demoBackbone() backbones.Config {
	return backbones.Config{Name: "mnist-vit", Family: backbones.CLIP, ImageSize: data.MNISTSide, PatchSize: 7, Channels: 1,
		Width: 64, Layers: 4, Heads: 4, MLPDim: 256, EmbedDim: 32, ActName: "quick_gelu", Eps: 1e-5,
		Mean: [3]float32{data.MNISTMean, data.MNISTMean, data.MNISTMean}, Std: [3]float32{data.MNISTStd, data.MNISTStd, data.MNISTStd}}
}

// fullModel trains the whole tower and the head.
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

// pretrainRecipe is everything that decides the pretrained weights besides the data.
type pretrainRecipe struct {
	Epochs, Batch, WarmupEpochs int
	LR, WeightDecay             float64
	Seed                        uint64
	Augment                     data.Augmentation // zero value: no augmentation
	// Contrast weighs a contrastive term (train.ContrastiveLoss on the embeddings of
	// two augmented views of each image) added to the cross-entropy; 0 = off.
	Contrast float64
	// Positives is what the contrastive term pulls together: "views" (the two views
	// of one image, SimCLR) or "class" (every image of the digit, SupCon).
	Positives   string
	Temperature float64
	// Reconstruct weighs a denoising term: a linear decoder maps each augmented view's
	// embedding back to the clean image, mean squared error; 0 = off. Cross-entropy on
	// five digits alone lets the embedding forget everything but those five; the
	// decoder makes it keep what draws a digit.
	Reconstruct float64
	// Rotations > 1 also turns each image by a random multiple of 360°/Rotations and
	// classifies (digit, turn) jointly: a self-supervised task folded into the labels.
	Rotations int
}

// pretrainOptions are the flags of `host pretrain` (newPretrainCmd).
type pretrainOptions struct {
	out        string
	width      int
	embedDim   int
	patch      int
	limit      int
	probeSeeds int
	probeOnly  string
}

// positivesChoices are the words --positives takes.
var positivesChoices = []string{"views", "class"}

func newPretrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pretrain --out FILE.safetensors [--epochs N] [--seed S] | pretrain --probe FILE.safetensors",
		Short: "pretrain the built-in demo backbone on MNIST digits 0-4 (reproducible from a seed)",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	var o pretrainOptions
	fs.StringVar(&o.out, "out", "backbones/builtin/mnist-vit.safetensors", "where to write the backbone")
	// The defaults are the committed backbone's recipe: `host pretrain` alone rebuilds it.
	r := pretrainRecipe{}
	fs.IntVar(&r.Epochs, "epochs", 4, "passes over the training images")
	fs.Uint64Var(&r.Seed, "seed", 1, "initialisation, shuffling and augmentation seed")
	fs.Float64Var(&r.LR, "lr", 2e-3, "AdamW peak learning rate (cosine schedule after the warm-up)")
	fs.IntVar(&r.WarmupEpochs, "warmup-epochs", 1, "epochs of linear learning-rate warm-up")
	fs.Float64Var(&r.WeightDecay, "weight-decay", 0.05, "AdamW weight decay (not on biases and norms)")
	fs.IntVar(&r.Batch, "batch-size", 64, "images per step (each gives two views when --contrast > 0)")
	da := data.DigitAugmentation
	fs.Float64Var(&r.Augment.MaxRotate, "rotate", da.MaxRotate, "augmentation: random rotation within ± this many degrees")
	fs.Float64Var(&r.Augment.MaxScale, "scale", da.MaxScale, "augmentation: random scale within 1 ± this")
	fs.Float64Var(&r.Augment.MaxShift, "shift", da.MaxShift, "augmentation: random shift within ± this many pixels per axis")
	fs.Float64Var(&r.Augment.Elastic, "elastic", da.Elastic, "augmentation: elastic distortion of this RMS amplitude in pixels (0 = off)")
	fs.Float64Var(&r.Augment.Sigma, "elastic-sigma", da.Sigma, "smoothness (Gaussian σ, pixels) of the elastic displacement field")
	fs.Float64Var(&r.Contrast, "contrast", 0, "weight of a contrastive term on two augmented views of each image (0 = cross-entropy only)")
	fs.StringVar(&r.Positives, "positives", "views", "contrastive positives, the other views of an image (views: SimCLR) or every image of its digit (class: supervised contrastive): "+oneOf(positivesChoices))
	completeWords(cmd, "positives", positivesChoices...)
	fs.Float64Var(&r.Temperature, "temperature", 0.1, "contrastive temperature")
	fs.Float64Var(&r.Reconstruct, "reconstruct", 0, "weight of a denoising term: a linear decoder reconstructs the clean image from each view's embedding (0 = off)")
	fs.IntVar(&r.Rotations, "rotations", 4, "classify (digit, turn by a random multiple of 360°/N) jointly; 1 = digits only")
	fs.IntVar(&o.width, "width", 0, "tower width (0 = the built-in architecture's)")
	fs.IntVar(&o.embedDim, "embed-dim", 0, "embedding (projection) size (0 = the built-in architecture's)")
	fs.IntVar(&o.patch, "patch-size", 0, "patch size, dividing 28 (0 = the built-in architecture's)")
	fs.IntVar(&o.limit, "limit", 15000, "use only the first N of the 30,596 training images (0 = all); 15,000 was what the committed backbone's CPU budget allowed")
	fs.IntVar(&o.probeSeeds, "probe-seeds", 5, "after training, score 5-shot nearest-class-mean accuracy on digits 5-9 from frozen features over this many few-shot seeds (0 = skip)")
	fs.StringVar(&o.probeOnly, "probe", "", "only probe this existing backbone (a .safetensors file); train nothing")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return pretrain(r, o, args)
	}
	return cmd
}

func pretrain(r pretrainRecipe, o pretrainOptions, args []string) error {
	switch {
	case r.Epochs <= 0:
		return usageErr("--epochs must be positive, got %d", r.Epochs)
	case r.Batch < 2:
		return usageErr("--batch-size must be at least 2, got %d", r.Batch)
	case !slices.Contains(positivesChoices, r.Positives):
		return usageErr("--positives %q: want %s", r.Positives, oneOf(positivesChoices))
	case r.Contrast < 0 || r.Temperature <= 0:
		return usageErr("--contrast must be ≥ 0 and --temperature > 0")
	case r.Reconstruct < 0:
		return usageErr("--reconstruct must be ≥ 0, got %g", r.Reconstruct)
	case r.Rotations < 1:
		return usageErr("--rotations must be at least 1, got %d", r.Rotations)
	}
	log := newLogger("pretrain")
	b, err := core.OpenBackend("cpu")
	if err != nil {
		return err
	}
	if o.probeOnly != "" {
		m, err := backbones.Open(b, o.probeOnly, backbones.OpenOptions{NoText: true})
		if err != nil {
			return err
		}
		_, err = probeAndLog(log, m.Vision, o.probeSeeds)
		return err
	}
	digits := []int{0, 1, 2, 3, 4}
	trainDS, err := data.MNISTDigits(true, digits)
	if err != nil {
		return err
	}
	if o.limit > 0 && o.limit < trainDS.Len() {
		trainDS = trainDS.Subset(trainDS.Samples[:o.limit])
	}
	testDS, err := data.MNISTDigits(false, digits)
	if err != nil {
		return err
	}
	trainData, err := data.MNISTPixels(trainDS)
	if err != nil {
		return err
	}
	testData, err := data.MNISTPixels(testDS)
	if err != nil {
		return err
	}
	cfg := demoBackbone()
	if o.width > 0 {
		cfg.Width, cfg.MLPDim = o.width, 4*o.width
	}
	if o.embedDim > 0 {
		cfg.EmbedDim = o.embedDim
	}
	if o.patch > 0 {
		cfg.PatchSize = o.patch
	}
	vision, err := backbones.NewVision(b, cfg)
	if err != nil {
		return fmt.Errorf("--width/--embed-dim/--patch-size: %w", err)
	}
	vision.InitRandom(r.Seed)
	head := train.NewHead(b, cfg.EmbedDim, len(digits)*r.Rotations)
	head.InitRandom(r.Seed)
	m := &fullModel{vision: vision, head: head}
	log.Info("pretraining", "backbone", cfg.Name, "params", vision.NumParams(), "train_images", trainData.Len(), "epochs", r.Epochs)
	start := time.Now()
	shown := newProgress(false)
	err = pretrainLoop(b, m, trainData, r, shown)
	shown.Close()
	if err != nil {
		return err
	}
	// With turns in the labels, the upright test images score as the (digit, no turn)
	// class among all; a prediction of the right digit at another turn counts wrong.
	if r.Rotations > 1 {
		for i := range testData.Labels {
			testData.Labels[i] = []int{testData.Labels[i][0] * r.Rotations}
		}
	}
	acc, err := train.Evaluate(b, m, testData, train.Task{Classes: len(digits) * r.Rotations, Metric: metrics.NameAccuracy}, 256)
	if err != nil {
		return err
	}
	elapsed := time.Since(start).Round(time.Second)
	log.Info("pretrained", "test_accuracy_digits_0_4", fmt.Sprintf("%.4f", acc), "elapsed", elapsed)
	probe, err := probeAndLog(log, vision, o.probeSeeds)
	if err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(cfg)
	note := fmt.Sprintf("pretrained on MNIST digits 0-4 (%d images, %d epochs, seed %d, %s); test accuracy on digits 0-4 %.4f",
		trainData.Len(), r.Epochs, r.Seed, elapsed, acc)
	if probe != "" {
		note += "; " + probe
	}
	meta := map[string]string{
		"kadapt.config":  string(cfgJSON),
		"kadapt.command": "host pretrain " + strings.Join(args, " "),
		"kadapt.note":    note,
	}
	return backbones.SaveVision(vision, o.out, meta)
}

// pretrainLoop trains tower and head with AdamW on a warm-up + cosine schedule. Each
// step draws its augmentations from (seed, step), so a run is a function of the recipe.
func pretrainLoop(b core.Backend, m *fullModel, images *data.Mem, r pretrainRecipe, progress train.Progress) error {
	params := m.Trainable()
	const side = data.MNISTSide
	per := side * side
	var dec *decoder
	if r.Reconstruct > 0 {
		dec = newDecoder(b, m.vision.Cfg.EmbedDim, per, r.Seed)
		defer dec.release()
		params = append(params, dec.W, dec.B)
	}
	o := optim.NewAdamW(b, train.ParamGroups(params, float32(r.WeightDecay)), optim.DefaultAdamWConfig())
	n := images.Len()
	batches := n / r.Batch // the last partial batch is dropped: contrastive terms want full batches
	if batches == 0 {
		return usageErr("--batch-size %d exceeds the %d training images", r.Batch, n)
	}
	sched := optim.WarmupCosine{Base: float32(r.LR), Warmup: r.WarmupEpochs * batches, Total: r.Epochs * batches}
	views := 1
	if r.Contrast > 0 {
		views = 2
	}
	background := float32((0 - data.MNISTMean) / data.MNISTStd)
	augment := r.Augment != data.Augmentation{}
	x := make([]float32, views*r.Batch*per)
	clean := make([]float32, views*r.Batch*per)
	labels := make([]float32, views*r.Batch)
	groups := make([]int, views*r.Batch)
	tp := autograd.NewTape(b)
	tp.Training = true
	step := 0
	for epoch := range r.Epochs {
		start := time.Now()
		order := rand.New(rand.NewPCG(r.Seed, uint64(epoch)+0x9e3779b9)).Perm(n)
		var lossSum float64
		for bi := range batches {
			rng := rand.New(rand.NewPCG(r.Seed, uint64(step)+0x61756720))
			for v := range views {
				for i, j := range order[bi*r.Batch : (bi+1)*r.Batch] {
					row := v*r.Batch + i
					src, dst := images.X[j*per:(j+1)*per], x[row*per:(row+1)*per]
					copy(clean[row*per:(row+1)*per], src)
					turn := 0
					if r.Rotations > 1 {
						turn = rng.IntN(r.Rotations)
					}
					if augment || turn > 0 {
						wp := r.Augment.Draw(rng, side, side)
						wp.Theta += 2 * math.Pi * float64(turn) / float64(r.Rotations)
						wp.Apply(dst, src, side, side, background)
					} else {
						copy(dst, src)
					}
					labels[row] = float32(images.Labels[j][0]*r.Rotations + turn)
					groups[row] = i
					if r.Positives == "class" {
						groups[row] = images.Labels[j][0]
					}
				}
			}
			tp.SetSeed(r.Seed<<32 + uint64(step))
			feats := m.vision.Forward(tp, tp.Input(x, views*r.Batch, 1, side, side)).Embeds
			target := b.Alloc(core.Shape{views * r.Batch})
			b.Upload(target, labels)
			loss := tp.CrossEntropy(m.head.Forward(tp, feats), target, 0)
			if r.Contrast > 0 {
				loss = tp.Add(loss, tp.Scale(train.ContrastiveLoss(tp, feats, groups, float32(r.Temperature)), float32(r.Contrast)))
			}
			if dec != nil {
				loss = tp.Add(loss, tp.Scale(dec.loss(tp, feats, tp.Input(clean, views*r.Batch, per)), float32(r.Reconstruct)))
			}
			tp.Backward(loss)
			o.Step(sched.LR(step))
			o.ZeroGrad()
			var l [1]float32
			b.Download(l[:], loss.Value)
			tp.Reset()
			b.Release(target)
			if math.IsNaN(float64(l[0])) || math.IsInf(float64(l[0]), 0) {
				return fmt.Errorf("%w (epoch %d, step %d)", train.ErrDiverged, epoch+1, step+1)
			}
			lossSum += float64(l[0])
			step++
			progress.Step(epoch+1, r.Epochs, bi+1, batches, float64(l[0]), math.NaN(),
				float64((bi+1)*r.Batch)/time.Since(start).Seconds())
		}
		elapsed := time.Since(start).Seconds()
		progress.Epoch(train.EpochMetrics{Epoch: epoch + 1, Step: step, LR: float64(sched.LR(step - 1)),
			TrainLoss: lossSum / float64(batches), Val: math.NaN(), ValLoss: math.NaN(), Test: math.NaN(),
			Seconds: elapsed, ImagesPS: float64(batches*r.Batch) / elapsed})
	}
	return nil
}

// decoder is the denoising term's linear map from an embedding back to pixels; it is
// trained with the tower and thrown away.
type decoder struct{ W, B *autograd.Var }

func newDecoder(b core.Backend, embed, pixels int, seed uint64) *decoder {
	d := &decoder{W: autograd.NewParam(b, "decoder.weight", core.Shape{pixels, embed}),
		B: autograd.NewParam(b, "decoder.bias", core.Shape{pixels})}
	bound := 1 / math.Sqrt(float64(embed))
	rng := rand.New(rand.NewPCG(seed, 0x646563))
	w := make([]float32, pixels*embed)
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
	b.Upload(d.W.Value, w)
	return d
}

// loss is the mean over pixels and rows of (decoded − target)².
func (d *decoder) loss(tp *autograd.Tape, embeds, target *autograd.Var) *autograd.Var {
	return tp.Mean(tp.Square(tp.Sub(tp.Linear(embeds, d.W, d.B), target)), nil, false)
}

func (d *decoder) release() {
	b := d.W.Value.Backend()
	b.Release(d.W.Value)
	b.Release(d.B.Value)
}
