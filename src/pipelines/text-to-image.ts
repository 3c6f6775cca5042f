/**
 * Text-to-image as diffusers' StableDiffusionPipeline: prompt (and negative prompt) embeddings,
 * classifier-free guidance when guidance > 1 (rows [uncond x K, cond x K] in one UNet call),
 * DDIM steps, VAE decode. Returns final latents and images.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { composeVariants, type UNetVariant } from '../components/unet.js';
import { controlNetFeeds, controlNetVariant, prepareControls, type ControlInput } from '../components/controlnet.js';
import type { Feed } from '../graph/session.js';
import { InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { createScheduler } from '../schedulers/index.js';
import { concatRows, hasNonFinite, type Tensor } from '../tensor.js';
import { doClassifierFreeGuidance, guide } from './guidance.js';
import { report, type RunControl } from './progress.js';
import { decodeLatents, latentShape, repeatRows, type GeneratedImages } from './common.js';

export interface TextToImageOptions extends RunControl {
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
  scheduler?: string;
  eta?: number;
  clipSkip?: number;
  /** ControlNets with their condition images (at the output size) and scales. */
  controls?: readonly ControlInput[];
  /** Skip the VAE (output_type='latent'). */
  latentsOnly?: boolean;
  /** Per-step hook for methods: a UNet variant and its feeds for this step. */
  variantForStep?: (i: number, t: number) => { variant: UNetVariant; feeds: Record<string, Feed> } | undefined;
  /** Called after each step with the latents (tests, callbacks). */
  onStepEnd?: (i: number, t: number, latents: Tensor) => void;
}

export function validateSampling(steps: number, guidance: number): void {
  if (!Number.isInteger(steps) || steps < 1) throw new InputError(`--steps must be an integer >= 1, got ${steps}`);
  if (!Number.isFinite(guidance)) throw new InputError(`--guidance must be a number, got ${guidance}`);
}

export async function textToImage(ck: Checkpoint, o: TextToImageOptions): Promise<GeneratedImages> {
  const steps = o.steps ?? 50, guidance = o.guidance ?? 7.5, k = o.numImages ?? 1;
  validateSampling(steps, guidance);
  if (!Number.isInteger(k) || k < 1) throw new InputError(`--num-images must be an integer >= 1, got ${k}`);
  const unet = ck.unet();
  const vae = ck.vae();
  const scheduler = createScheduler(o.scheduler ?? 'ddim', ck.schedulerConfig());
  const shape = latentShape(vae.scaleFactor, unet.config.inChannels, k, o.width ?? unet.config.sampleSize * vae.scaleFactor, o.height ?? unet.config.sampleSize * vae.scaleFactor);
  let latents = initialLatents(shape, o.latents, o.noise);

  report(o, 'encode', 0, 1);
  const cfg = doClassifierFreeGuidance(guidance);
  const te = ck.textEncoder();
  const prompts = cfg ? [o.negativePrompt ?? '', o.prompt] : [o.prompt];
  const emb = await te.encode(prompts, { clipSkip: o.clipSkip });
  const [negEmb, posEmb] = cfg ? [rowsOf(emb.lastHiddenState, 0), rowsOf(emb.lastHiddenState, 1)] : [undefined, rowsOf(emb.lastHiddenState, 0)];
  const context = cfg ? concatRows([repeatRows(negEmb!, k), repeatRows(posEmb!, k)]) : repeatRows(posEmb!, k);

  const controls = prepareControls(o.controls ?? [], shape[3]! * vae.scaleFactor, shape[2]! * vae.scaleFactor, vae.scaleFactor);
  const control = controlNetVariant(controls);
  scheduler.setTimesteps(steps);
  const ts = scheduler.timesteps;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    report(o, 'denoise', i, ts.length);
    const input = cfg ? concatRows([latents, latents]) : latents;
    const v = o.variantForStep?.(i, t);
    const variant = composeVariants([control, v?.variant]);
    const feeds = { ...controlNetFeeds(controls, () => 1, input.shape[0]!), ...v?.feeds };
    const { noisePred } = await unet.run({ sample: input, timestep: t, encoderHiddenStates: context, variant, feeds });
    const eps = cfg ? guide(noisePred, guidance) : noisePred.data;
    latents = { shape: latents.shape, data: scheduler.step(eps, t, latents.data, { eta: o.eta ?? 0, noise: o.noise }).prevSample };
    o.onStepEnd?.(i, t, latents);
  }
  report(o, 'denoise', ts.length, ts.length);
  if (hasNonFinite(latents)) throw new InputError('sampling produced NaN or infinite latents (check the model weights and --guidance)');
  return { latents, images: o.latentsOnly ? [] : await decodeLatents(vae, latents, o), truncatedPrompts: emb.truncated };
}

export function initialLatents(shape: readonly number[], given: Tensor | undefined, noise: NoiseSource | undefined): Tensor {
  if (given) {
    if (given.shape.join(',') !== shape.join(',')) throw new InputError(`--latents has shape [${given.shape.join(', ')}] but this run needs [${shape.join(', ')}]`);
    return given;
  }
  if (!noise) throw new InputError('no initial latents and no noise source (give --latents or --seed)');
  return { shape, data: noise.randn(shape) }; // init_noise_sigma is 1 for DDIM
}

function rowsOf(t: Tensor, i: number): Tensor {
  const inner = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [1, ...t.shape.slice(1)], data: t.data.subarray(i * inner, (i + 1) * inner) };
}
