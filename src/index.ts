/**
 * visprompt as a library: open a checkpoint, run a pipeline. Everything the CLI does goes through
 * these functions.
 */
export { openCheckpoint, Checkpoint } from './components/checkpoint.js';
export { parseLoraSpec, type LoraSpec } from './adapters/lora/lora-set.js';
export type { TextEncoder, TextEmbeddings } from './components/text-encoder.js';
export type { UNet, UNetVariant, UNetCall } from './components/unet.js';
export type { VAE } from './components/vae.js';
export { TinyVAE, useTinyVae } from './components/vae-tiny.js';
export type { LatentAutoencoder } from './components/latent-autoencoder.js';
export type { ImageEncoder, ImageEmbeddings } from './components/image-encoder.js';
export { textToImage, type TextToImageOptions } from './pipelines/text-to-image.js';
export { invert, imageToLatents, type Inversion, type InversionOptions } from './pipelines/invert.js';
export { vary, rowLayout, type VaryOptions, type VaryResult } from './pipelines/vary.js';
export { decodeLatents, type GeneratedImages } from './pipelines/common.js';
export type { ProgressEvent, PreviewImages, RunControl } from './pipelines/progress.js';
export { latentsToRgbApprox, type PreviewOptions } from './pipelines/preview.js';
export { createMethod, inDetailIP, kvConcat, kvReplace, styleAligned, METHOD_NAMES, GUIDANCE_MODES } from './methods/index.js';
export type { MethodName, GuidanceMode, ReferenceMethod, MethodOptions } from './methods/index.js';
export { createNoise, NativeGaussian, type NoiseSource, type NoiseKind } from './noise/gaussian.js';
export { TorchGenerator } from './noise/torch-generator.js';
export {
  DDIMScheduler, DDIMInverseScheduler, DDPMScheduler, createScheduler, SCHEDULERS, type SchedulerName, type Sampler, type SchedulerStepOptions, type SchedulerStepResult,
  EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, PNDMScheduler, LMSDiscreteScheduler,
  HeunDiscreteScheduler, LCMScheduler,
} from './schedulers/index.js';
export { parsePythonJson } from './io/python-json.js';
export { readImageRGB, writePNG, readPNGText, type RGBImage } from './io/image.js';
export { SafetensorsFile, writeSafetensors, readAllFloat32 } from './io/safetensors.js';
export { openTensorFile, openTensorSource, inspectTensorFile, tensorFileFormat, type TensorFile, type TensorFileFormat, type InspectEntry } from './io/tensor-file.js';
export { CLIPTokenizer } from './io/clip-tokenizer.js';
export { configureEngine, type Device, type EngineOptions } from './graph/session.js';
export { PRECISIONS, type Precision } from './graph/quantize.js';
export { VispromptError, FileFormatError, InputError } from './errors.js';
export type { Tensor } from './tensor.js';
export { inject, type InjectOptions } from './pipelines/inject.js';
export { edit, type EditOptions } from './pipelines/edit.js';
export { fuseGenerate, alignedImageTokens, type FuseOptions } from './pipelines/fuse.js';
export { trainAligner, type TrainAlignerOptions } from './pipelines/train-aligner.js';
export { trainAttribute, type TrainAttributeOptions } from './pipelines/train-attribute.js';
export { ControlNet, type ControlInput } from './components/controlnet.js';
export { IPAdapter, openImageEncoder, prepareIPAdapters, type IPAdapterInput, type PreparedIPAdapter } from './adapters/ip-adapter/index.js';
export { CLIPModel } from './components/clip-model.js';
export { gradients } from './graph/autodiff.js';
export { Graph, Value } from './graph/ir.js';
export { Adam, SGD } from './training/optimizers.js';
export { pnoLossAndGrads } from './methods/vcf/pno.js';
export { FUSIONS, type Fusion } from './methods/vcf/fusion.js';
export { evalClip, evalDino, evalLpips, evalFid, type EvalOptions, type FidResult, type PairScores } from './eval/evaluate.js';
export { DinoViT } from './eval/dino-vit.js';
export { LPIPS } from './eval/lpips.js';
export { FIDInception } from './eval/fid-inception.js';
export { frechetDistance, featureStats } from './eval/frechet.js';
export { kernelInceptionDistance } from './eval/kid.js';
export { inceptionScore, inceptionLogits, type InceptionScoreOptions } from './eval/inception-score.js';
export { runBenchmark, METRIC_NAMES, type BenchmarkOptions, type BenchmarkResult, type BenchmarkSettings, type BenchmarkProgress, type MetricName, type MetricNetworks } from './benchmark/run.js';
export { expandGrid, readGridFile, GRID_PARAMETERS, type GridConfig, type GridSpec } from './benchmark/grid.js';
export { loadBenchmarkDataset, type BenchmarkDataset, type BenchmarkEntry } from './benchmark/dataset.js';
