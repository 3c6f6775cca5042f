/**
 * visprompt as a library: open a checkpoint, run a pipeline. Everything the CLI does goes through
 * these functions.
 */
export { openCheckpoint, Checkpoint } from './components/checkpoint.js';
export type { TextEncoder, TextEmbeddings } from './components/text-encoder.js';
export type { UNet, UNetVariant, UNetCall } from './components/unet.js';
export type { VAE } from './components/vae.js';
export type { ImageEncoder, ImageEmbeddings } from './components/image-encoder.js';
export { textToImage, type TextToImageOptions } from './pipelines/text-to-image.js';
export { invert, imageToLatents, type Inversion, type InversionOptions } from './pipelines/invert.js';
export { vary, rowLayout, type VaryOptions, type VaryResult } from './pipelines/vary.js';
export { decodeLatents, type GeneratedImages } from './pipelines/common.js';
export type { ProgressEvent, RunControl } from './pipelines/progress.js';
export { createMethod, inDetailIP, kvConcat, kvReplace, styleAligned, METHOD_NAMES, GUIDANCE_MODES } from './methods/index.js';
export type { MethodName, GuidanceMode, ReferenceMethod, MethodOptions } from './methods/index.js';
export { createNoise, NativeGaussian, type NoiseSource, type NoiseKind } from './noise/gaussian.js';
export { TorchGenerator } from './noise/torch-generator.js';
export { DDIMScheduler, DDIMInverseScheduler, createScheduler } from './schedulers/index.js';
export { readImageRGB, writePNG, readPNGText, type RGBImage } from './io/image.js';
export { SafetensorsFile, writeSafetensors, readAllFloat32 } from './io/safetensors.js';
export { CLIPTokenizer } from './io/clip-tokenizer.js';
export { configureEngine, type Device, type EngineOptions } from './graph/session.js';
export { VispromptError, FileFormatError, InputError } from './errors.js';
export type { Tensor } from './tensor.js';
