// Package datasets turns image-classification data on disk into lists of labelled
// samples, and knows the 20 ELEVATER benchmark datasets that the KAdaptation paper
// evaluates on: their sizes and the metric that scores each, how to find and fetch
// their files, and how the toolkit draws its few-shot subsets and validation splits.
//
// The registry holds the protocol's facts only (from the project's reference notes).
// ELEVATER's class-name lists, prompt-template sets and file layouts are the
// toolkit's resources and are not copied here: class names come from each dataset's
// labelmap, layouts are discovered on disk (LoadELEVATER), file lists come from a
// MANIFEST or the caller (Fetch), and template sets from a user's file
// (LoadTemplates); DefaultTemplates is kadapt's own generic set.
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
