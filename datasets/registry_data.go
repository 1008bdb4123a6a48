// The 20 ELEVATER datasets with the facts of the paper's protocol, from the project's
// reference notes: names, class counts, split sizes, metric, multi-label and
// resize-only flags. Nothing here is taken from the toolkit's files; see the package
// doc for what is deliberately absent and where it comes from instead.

package datasets

var elevater = []Info{
	{Name: "caltech-101", NumClasses: 102, Metric: MetricMeanPerClass, TrainImages: 3060, TestImages: 6084},
	{Name: "cifar-10", NumClasses: 10, Metric: MetricAccuracy, TrainImages: 50000, TestImages: 10000},
	{Name: "cifar-100", NumClasses: 100, Metric: MetricAccuracy, TrainImages: 50000, TestImages: 10000},
	{Name: "country211", NumClasses: 211, Metric: MetricAccuracy, TrainImages: 31650, TestImages: 21100},
	{Name: "dtd", NumClasses: 47, Metric: MetricAccuracy, TrainImages: 1880, TestImages: 1880},
	{Name: "eurosat_clip", NumClasses: 10, Metric: MetricAccuracy, TrainImages: 5000, TestImages: 5000},
	{Name: "fer-2013", NumClasses: 7, Metric: MetricAccuracy, TrainImages: 28709, TestImages: 3589},
	{Name: "fgvc-aircraft-2013b-variants102", NumClasses: 100, Metric: MetricMeanPerClass, TrainImages: 3334, TestImages: 3333},
	{Name: "food-101", NumClasses: 101, Metric: MetricAccuracy, TrainImages: 75750, TestImages: 25250},
	{Name: "gtsrb", NumClasses: 43, Metric: MetricAccuracy, TrainImages: 26640, TestImages: 12630},
	{Name: "hateful-memes", NumClasses: 2, Metric: MetricROCAUC, TrainImages: 8500, TestImages: 500},
	{Name: "kitti-distance", NumClasses: 4, Metric: MetricAccuracy, TrainImages: 6347, TestImages: 711, ResizeOnly: true},
	{Name: "mnist", NumClasses: 10, Metric: MetricAccuracy, TrainImages: 60000, TestImages: 10000},
	{Name: "oxford-flower-102", NumClasses: 102, Metric: MetricMeanPerClass, TrainImages: 1020, TestImages: 6149},
	{Name: "oxford-iiit-pets", NumClasses: 37, Metric: MetricMeanPerClass, TrainImages: 3680, TestImages: 3669},
	{Name: "patch-camelyon", NumClasses: 2, Metric: MetricAccuracy, TrainImages: 262144, TestImages: 32768},
	{Name: "rendered-sst2", NumClasses: 2, Metric: MetricAccuracy, TrainImages: 6920, TestImages: 1821},
	{Name: "resisc45_clip", NumClasses: 45, Metric: MetricAccuracy, TrainImages: 3150, TestImages: 25200},
	{Name: "stanford-cars", NumClasses: 196, Metric: MetricAccuracy, TrainImages: 8144, TestImages: 8041},
	{Name: "voc-2007-classification", NumClasses: 20, Metric: MetricMAP11, TrainImages: 2501, TestImages: 4952, MultiLabel: true},
}
