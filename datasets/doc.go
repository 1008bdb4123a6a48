// Package datasets turns image-classification data on disk into lists of labelled
// samples, and knows the 20 ELEVATER benchmark datasets that the KAdaptation paper
// evaluates on: their sizes and the metric that scores each, how to find and fetch
// their files, and how the toolkit draws its few-shot subsets and validation splits.
//
// The registry holds the protocol's facts only, from the project's reference notes:
// the 20 dataset names, class counts, train/test sizes, the metric that scores each,
// multi-label (voc-2007-classification) and resize-only (kitti-distance). An earlier
// version also carried ELEVATER's per-dataset class-name lists, prompt-template sets
// and folder/index/zip file names, transcribed from the toolkit's own files; those
// were removed because this project does not copy third-party code or data into its
// tree, and they are not bundled now. In their place:
//
//   - class names come from each dataset's labelmap (labels.txt or labelmap.txt) when
//     it is loaded, which is also what the toolkit falls back to;
//   - file layouts are discovered on disk by LoadELEVATER (its doc states the rule);
//   - which files to download comes from a MANIFEST served beside the data, or from
//     the caller (Fetch, FetchOptions.Files);
//   - prompt templates are DefaultTemplates, kadapt's own generic set, unless a
//     user's JSON or YAML file (LoadTemplates) supplies per-dataset sets — the way
//     to use ELEVATER's own sets, and to override class names for prompts.
//
// Formats: a folder per class (LoadImageFolder); the ELEVATER / vision-datasets
// index files (LoadIndex, LoadCOCO, LoadELEVATER) whose images sit inside zip
// archives and are read from there without extraction; the CIFAR-10/100 binary
// batches (LoadCIFAR10, LoadCIFAR100); MNIST's IDX files (LoadMNIST); and a CSV or
// TSV manifest of path,label rows (LoadManifest). Every loader returns a *Dataset
// whose images are reached through Open (encoded bytes) or Image (decoded).
//
// Reproducing the protocol: FewShot shuffles the training manifest with a
// re-implementation of CPython's random.Random (PyRandom) and then picks images
// exactly as vision-datasets 0.2.17's DatasetManifest.sample_few_shot_subset does,
// the version pinned by the ELEVATER toolkit and the paper's released code.
// SplitVal cuts the validation set off the few-shot set the way the toolkit's
// get_dataloader does. The metrics themselves live in package datasets/metrics.
package datasets
