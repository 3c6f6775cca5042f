/**
 * Asyrp editing (kwonminki/Asyrp_official, seed 002): invert the image, then for t >= t_edit add
 * c * DeltaBlock(h, temb) to the h-space and take the asymmetric step; below t_boost the process is
 * stochastic (eta 1), Asyrp's quality boosting.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import type { RGBImage } from '../io/image.js';
import { loadDeltaBlock } from '../methods/delta-block.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { finalImages, type GeneratedImages, referenceAtSize } from './common.js';
import { hSpaceSample, hSpaceShape } from './h-space.js';
import { checkTimestep } from './inject.js';
import { imageToLatents, invert } from './invert.js';
import type { RunControl } from './progress.js';
import type { PreviewOptions } from './preview.js';
import { InputError } from '../errors.js';

export interface EditOptions extends RunControl {
  /** Decoded previews of the x0 prediction every N steps, reported as progress events (`--preview-every`). */
  preview?: PreviewOptions;
  image: RGBImage;
  /** Safetensors file of the attribute network (DeltaBlock). */
  attribute: string;
  prompt?: string;
  /** diffusers' clip_skip for the prompt (the inversion, whose conditioning the generation reuses). */
  clipSkip?: number;
  steps?: number;
  /** Edit strength c in h' = h + c dh (default 1). */
  strength?: number;
  tEdit?: number;
  tBoost?: number;
  noise?: NoiseSource;
  onWarning?: (message: string) => void;
}

export async function edit(ck: Checkpoint, o: EditOptions): Promise<GeneratedImages> {
  const steps = o.steps ?? 40;
  const tEdit = checkTimestep('--t-edit', o.tEdit ?? 500);
  const tBoost = checkTimestep('--t-boost', o.tBoost ?? 200);
  const strength = o.strength ?? 1;
  if (!Number.isFinite(strength)) throw new InputError(`--strength must be a number, got ${strength}`);
  const unet = ck.unet();
  const ch = unet.arch.unet.blockOutChannels;
  const delta = loadDeltaBlock(o.attribute, ch[ch.length - 1]!, ch[0]! * 4);
  const factor = ck.isPixelSpace() ? 1 : ck.vae().scaleFactor;
  const image = referenceAtSize(o.image, factor, undefined, undefined, o.onWarning);
  const z0 = await imageToLatents(ck, image);
  const inv = await invert(ck, z0, { prompt: unet.conditional ? o.prompt ?? '' : '', clipSkip: o.clipSkip, steps, onProgress: o.onProgress, signal: o.signal });
  if (tBoost > 0 && !o.noise) throw new InputError('--t-boost > 0 adds noise below it: give --seed (or --t-boost 0)');
  const x = await hSpaceSample(ck, {
    xT: inv.chain[inv.chain.length - 1]!,
    context: inv.conditioning,
    steps,
    edit: { kind: 'delta', weights: delta.weights, config: delta.config, id: o.attribute },
    hShape: hSpaceShape(ck, z0.shape),
    plan: (_i, t) => ({ on: t >= tEdit, strength }),
    etaAt: (t) => (t < tBoost ? 1 : 0),
    noise: o.noise,
    onProgress: o.onProgress,
    preview: o.preview,
    signal: o.signal,
  });
  const images = await finalImages(ck, x, o);
  return { latents: x, images, truncatedPrompts: [] };
}
