// Package data is kadapt's data path: it turns a dataset's samples into
// preprocessed batches on a backend, for training (`host run`, `sweep`,
// `pretrain`) and for the commands that only run the tower (`embed`,
// `preprocess`, `zeroshot`, the transfer probe).
//
// One image's way from disk to the loss:
//
//  1. Listing. Package datasets reads a dataset's layout (an image folder, ELEVATER
//     index files and zip archives, CIFAR or MNIST binaries, a CSV manifest) into a
//     *datasets.Dataset: a list of Samples, each a Source (a file path, or
//     "archive.zip@member") and its labels. The few-shot training set and the
//     validation split are drawn from that list (Dataset.FewShot, SplitVal); host's
//     task.go picks the loader from the run configuration.
//  2. Decoding. Dataset.Image reads the encoded bytes and decodes them with
//     preprocess.DecodeBytes, the project's one decoder, which gives the RGB pixels
//     PIL's Image.open(...).convert("RGB") gives (JPEG's chroma upsampling, WebP's
//     colour conversion, a GIF's transparent index), so an image trains, embeds and
//     classifies zero-shot as the same pixels.
//  3. Preprocessing. Images (a Split over a dataset) resizes, crops and normalises
//     each image into float32 [3,H,W] with preprocess.ProcessInto, as the model
//     folder's preprocessor_config.json says (PreprocessConfig), in parallel over a
//     batch, and keeps the result in memory while a budget allows: few-shot
//     training revisits the same images every epoch. The built-in demo's MNIST
//     digits skip this step: MNISTPixels normalises the grey 28×28 images once into
//     a Mem, and the demo's random distortions (Augmented, DigitAugmentation) are
//     an EpochSplit drawn afresh each epoch.
//  4. Batches on the backend. The training loop hands a Loader the indices of each
//     batch; the Loader either fetches them on the host prefetchDepth batches ahead
//     of the step (so decoding overlaps computing) and uploads them, or, for a split
//     staged on the device once (Staging), gathers them there. Batch.Input is the
//     tensor the model's forward pass starts from; the loss follows in host/train.
//
// When the backbone is frozen (a linear probe), its features are computed once:
// Features runs the tower over a split and returns the embeddings as a Mem, which
// then replaces the split, and Embed does the same for `host embed` and
// `zeroshot`, pooled tokens included. FetchChunks is the one loop that reads a
// whole split in order, chunk by chunk, fetching ahead as the Loader does
// (evaluation, staging, features, Load).
//
// Why host/data: the package depends on the backbones (feature caching runs the
// tower) and on core's backends (staging, uploads), which package datasets, a
// leaf that knows file formats and the benchmark's protocol, should not; and the
// training loop in host/train consumes its batches, so it sits beside host/train,
// which imports it and never the other way round.
package data
