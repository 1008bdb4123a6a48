// Package datasets turns image-classification data on disk into lists of labelled
// samples, and knows the 20 ELEVATER benchmark datasets that the KAdaptation paper
// evaluates on: where they live, how to fetch them, how the toolkit draws its
// few-shot subsets and validation splits, and which metric scores each of them.
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
