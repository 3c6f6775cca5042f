/** Pieces every pipeline shares: latent shapes, row repetition, decoding to 8-bit images. */
import type { LatentAutoencoder } from '../components/latent-autoencoder.js';
import type { Checkpoint, ComponentName } from '../components/checkpoint.js';
import { lowMemory } from '../graph/session.js';
import { InputError } from '../errors.js';
import type { RGBImage } from '../io/image.js';
import { pilResize } from '../io/pil-resize.js';
import { numpyToPil, VaeImageProcessor } from '../io/vae-image-processor.js';
import { hasNonFinite, type Tensor } from '../tensor.js';
import { report, type RunControl } from './progress.js';
import type { NoiseSource } from '../noise/gaussian.js';

/** What every sampling pipeline takes: text, steps, guidance, size, count, initial noise. */
export interface SamplingOptions extends RunControl {
  prompt: string;
  negativePrompt?: string;
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  numImages?: number;
  /** Initial latents [K, C, h, w] (diffusers' `latents=`); otherwise drawn from `noise`. */
  latents?: Tensor;
  noise?: NoiseSource;
}

export interface GeneratedImages {
  /** Final latents [K, C, h, w] (before the VAE). */
  readonly latents: Tensor;
  readonly images: RGBImage[];
  readonly truncatedPrompts: readonly string[];
}

export function latentShape(factor: number, channels: number, k: number, width: number, height: number): number[] {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < factor) throw new InputError(`--${name} must be a positive integer of at least ${factor}, got ${v}`);
    if (v % factor !== 0) throw new InputError(`--${name} ${v} is not divisible by ${factor} (the VAE's downsampling factor); try ${Math.max(factor, v - (v % factor))}`);
  }
  return [k, channels, height / factor, width / factor];
}

export function repeatRows(t: Tensor, k: number): Tensor {
  const out = new Float32Array(t.data.length * k);
  for (let i = 0; i < k; i++) out.set(t.data, i * t.data.length);
  return { shape: [t.shape[0]! * k, ...t.shape.slice(1)], data: out };
}

/** VAE decode one image at a time (peak memory), then diffusers' postprocess to uint8. */
export async function decodeLatents(vae: LatentAutoencoder, latents: Tensor, ctl?: RunControl): Promise<RGBImage[]> {
  const k = latents.shape[0]!;
  const inner = latents.data.length / k;
  const proc = new VaeImageProcessor({ vae_scale_factor: vae.scaleFactor });
  const images: RGBImage[] = [];
  for (let i = 0; i < k; i++) {
    report(ctl, 'decode', i, k);
    const decoded = await vae.decode({ shape: [1, ...latents.shape.slice(1)], data: latents.data.subarray(i * inner, (i + 1) * inner) });
    if (hasNonFinite(decoded)) throw new InputError('the VAE produced NaN or infinite pixels (check the VAE weights; fp16-only VAEs overflow)');
    images.push(...numpyToPil(proc.postprocessNp(decoded)));
  }
  report(ctl, 'decode', k, k);
  return images;
}

/** Pixel-space samples in [-1, 1] to 8-bit images (diffusers' postprocess without a VAE). */
export function samplesToImages(samples: Tensor): RGBImage[] {
  if (hasNonFinite(samples)) throw new InputError('sampling produced NaN or infinite pixels');
  return numpyToPil(new VaeImageProcessor({ vae_scale_factor: 1 }).postprocessNp(samples));
}

/** A checkpoint's final samples as 8-bit images: decoded by its VAE, or taken as pixels for a pixel-space model. */
export async function finalImages(ck: Checkpoint, x: Tensor, ctl?: RunControl): Promise<RGBImage[]> {
  return ck.isPixelSpace() ? samplesToImages(x) : decodeLatents(ck.autoencoder(), x, ctl);
}

/** A pipeline phase no longer needs these components: in low-memory mode free their sessions now. */
export async function phaseDone(ck: Checkpoint, ...components: ComponentName[]): Promise<void> {
  if (!lowMemory()) return;
  for (const c of components) await ck.release(c);
}

/** The reference at the output size: resized (PIL bicubic) with a warning when its size differs. */
export function referenceAtSize(ref: RGBImage, factor: number, width: number | undefined, height: number | undefined, warn?: (m: string) => void): RGBImage {
  const w = width ?? ref.width - (ref.width % factor), h = height ?? ref.height - (ref.height % factor);
  latentShape(factor, 1, 1, w, h); // validates
  if (w === ref.width && h === ref.height) return ref;
  warn?.(`reference image is ${ref.width}x${ref.height}; resized to ${w}x${h}`);
  return pilResize(ref, w, h, 'bicubic');
}
