/**
 * InjectFusion (curryjung/InjectFusion_official, seed 004): content injection in h-space. The original
 * image is inverted (its x_T starts the generative process, its skip connections are kept); the content
 * image is inverted too, keeping its h_t at every timestep; for t >= t_edit the original's h is replaced by
 * slerp(gamma, h, h_content |h| / |h_content|) and the asymmetric step is taken.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { InputError } from '../errors.js';
import type { RGBImage } from '../io/image.js';
import { pilResize } from '../io/pil-resize.js';
import type { NoiseSource } from '../noise/gaussian.js';
import type { Tensor } from '../tensor.js';
import { finalImages, type GeneratedImages, referenceAtSize } from './common.js';
import { hSpaceSample, hSpaceShape } from './h-space.js';
import { imageToLatents, invert } from './invert.js';
import type { RunControl } from './progress.js';
import type { PreviewOptions } from './preview.js';

export interface InjectOptions extends RunControl {
  /** Decoded previews of the x0 prediction every N steps, reported as progress events (`--preview-every`). */
  preview?: PreviewOptions;
  original: RGBImage;
  content: RGBImage;
  /** Text conditioning for SD models (inversion and generation); ignored by pixel-space models. */
  prompt?: string;
  /** diffusers' clip_skip for the prompt (both inversions, hence the generation that reuses their conditioning). */
  clipSkip?: number;
  steps?: number;
  /** Inject at timesteps t >= tEdit (default 400). */
  tEdit?: number;
  /** Constant gamma (default 0.5) or a linear ramp [first injected step, last injected step]. */
  gamma?: number | readonly [number, number];
  omega?: number;
  /** Restricts the blend spatially (white = inject), resized to the h-space resolution. */
  mask?: RGBImage;
  /** eta 0 above this timestep, 1 at and below it (default 200). */
  tNoise?: number;
  /** Scale of the direction term for t >= dtEnd while injecting (default 0.9985, t >= 950). */
  dtLambda?: number;
  dtEnd?: number;
  noise?: NoiseSource;
  onWarning?: (message: string) => void;
  /** Inspection: h, the injected h' and the content's h at each injected step. */
  onHSpace?: (t: number, h: Tensor, edited: Tensor, content: Tensor) => void;
}

export function checkTimestep(flag: string, t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= 1000) throw new InputError(`${flag} must be an integer timestep in [0, 1000), got ${t}`);
  return t;
}

/** A grey-level mask image resized to the h-space grid, in [0, 1], [1, 1, h, w]. */
export function maskAt(mask: RGBImage, h: number, w: number): Tensor {
  const grey = new Uint8Array(mask.width * mask.height);
  for (let i = 0; i < grey.length; i++) {
    // PIL convert('L'): L = R * 299/1000 + G * 587/1000 + B * 114/1000
    grey[i] = Math.round((mask.data[3 * i]! * 299 + mask.data[3 * i + 1]! * 587 + mask.data[3 * i + 2]! * 114) / 1000);
  }
  const small = pilResize({ width: mask.width, height: mask.height, data: grey }, w, h, 'bilinear');
  return { shape: [1, 1, h, w], data: Float32Array.from(small.data, (v) => v / 255) };
}

/** Gamma for each of `m` injected steps (first = most noisy). */
export function gammaSchedule(gamma: number | readonly [number, number], m: number): number[] {
  const [a, b] = typeof gamma === 'number' ? [gamma, gamma] : gamma;
  for (const g of [a, b]) if (!(g >= 0 && g <= 1)) throw new InputError(`gamma must be in [0, 1], got ${g}`);
  return Array.from({ length: m }, (_, k) => (m === 1 ? a : a + ((b - a) * k) / (m - 1)));
}

/**
 * dt_lambda per timestep: the direction term is scaled by dtLambda (default 0.9985) at t >= dtEnd (default 950),
 * on injected steps only (gammaAt(t) > 0), so gamma = 0 is exactly the plain reconstruction.
 */
export function dtLambdaSchedule(o: Pick<InjectOptions, 'dtLambda' | 'dtEnd'>, gammaAt: (t: number) => number): (t: number) => number {
  const dtLambda = o.dtLambda ?? 0.9985, dtEnd = o.dtEnd ?? 950;
  return (t) => (t >= dtEnd && gammaAt(t) > 0 ? dtLambda : 1);
}

export async function inject(ck: Checkpoint, o: InjectOptions): Promise<GeneratedImages> {
  const steps = o.steps ?? 50;
  const tEdit = checkTimestep('--t-edit', o.tEdit ?? 400);
  const tNoise = checkTimestep('--t-noise', o.tNoise ?? 200);
  const unet = ck.unet();
  const factor = ck.isPixelSpace() ? 1 : ck.vae().scaleFactor;
  const original = referenceAtSize(o.original, factor, undefined, undefined, o.onWarning);
  let content = o.content;
  if (content.width !== original.width || content.height !== original.height) {
    o.onWarning?.(`content image is ${content.width}x${content.height}; resized to the original's ${original.width}x${original.height}`);
    content = pilResize(content, original.width, original.height, 'bicubic');
  }
  const prompt = unet.conditional ? o.prompt ?? '' : '';
  const z0 = await imageToLatents(ck, original);
  const zc = await imageToLatents(ck, content);
  const inv = await invert(ck, z0, { prompt, clipSkip: o.clipSkip, steps, onProgress: o.onProgress, signal: o.signal });
  const invContent = await invert(ck, zc, { prompt, clipSkip: o.clipSkip, steps, captureHSpace: true, onProgress: o.onProgress, signal: o.signal });
  const hShape = hSpaceShape(ck, z0.shape);
  const active = [...inv.timesteps].reverse().filter((t) => t >= tEdit);
  if (active.length === 0) o.onWarning?.(`no step has t >= --t-edit ${tEdit}: nothing is injected`);
  const gammas = gammaSchedule(o.gamma ?? 0.5, Math.max(active.length, 1));
  const contentAt = (t: number): Tensor => {
    const keys = [...invContent.hSpace.keys()];
    const closest = keys.reduce((best, k) => (Math.abs(k - t) < Math.abs(best - t) ? k : best), keys[0]!);
    return invContent.hSpace.get(closest)!;
  };
  const x = await hSpaceSample(ck, {
    xT: inv.chain[inv.chain.length - 1]!,
    context: inv.conditioning,
    steps,
    edit: { kind: 'inject', masked: o.mask !== undefined },
    hShape,
    mask: o.mask ? maskAt(o.mask, hShape[2]!, hShape[3]!) : undefined,
    plan: (_i, t) => {
      const k = active.indexOf(t);
      return k < 0 ? { on: false } : { on: true, gamma: gammas[k], content: contentAt(t) };
    },
    etaAt: (t) => (t > tNoise ? 0 : 1),
    dtLambdaAt: dtLambdaSchedule(o, (t) => gammas[active.indexOf(t)] ?? 0),
    onHSpace: o.onHSpace ? (t, h, e) => o.onHSpace!(t, h, e, contentAt(t)) : undefined,
    omega: o.omega,
    noise: o.noise,
    onProgress: o.onProgress,
    preview: o.preview,
    signal: o.signal,
  });
  const images = await finalImages(ck, x, o);
  return { latents: x, images, truncatedPrompts: [] };
}
