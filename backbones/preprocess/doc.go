// Package preprocess decodes images and turns them into the float32 [3,H,W]
// tensors a CLIP-style vision transformer expects, reproducing Hugging Face's
// CLIPImageProcessor (PIL backend) pixel for pixel.
//
// The pipeline is HF's: convert to RGB the way PIL's Image.convert("RGB")
// does, resize so the shortest edge is S with PIL's separable fixed-point
// resampler (Image.resize with BICUBIC by default), centre-crop with HF's
// floor convention (zero padding when the image is smaller than the crop),
// multiply by the rescale factor and normalise with the per-channel mean and
// standard deviation, in the same float32 arithmetic numpy uses. This "pil"
// backend is also what CLIP's and ELEVATER's torchvision-on-PIL transforms
// compute. Config.Backend "torchvision" reproduces instead the processor
// transformers 5 uses by default (CLIPImageProcessorFast): PyTorch's
// int16-weight resampler, torchvision's crop rounding and a fused float32
// normalisation; the two backends differ by one level on well under 1% of
// the samples.
//
// Decoding goes further than Go's image decoders in the places where they
// and PIL's codecs disagree on pixel values: JPEG chroma is upsampled with
// libjpeg-turbo's "fancy" triangle filter and converted with libjpeg's
// fixed-point YCbCr tables, lossy WebP with libwebp's fancy upsampler and
// BT.601 limited-range conversion, GIF keeps the palette colour of the
// transparent index, and CMYK uses PIL's cmyk2rgb rounding. The one known
// remaining difference is the JPEG inverse DCT: Go's differs from
// libjpeg-turbo's ISLOW IDCT by ±1 on some samples.
package preprocess
