/**
 * DDIM inversion: z_0 = VAE mean x scaling_factor, then DDIM-inverse steps with the UNet conditioned
 * on an inversion prompt and no guidance, keeping the whole chain z_0 .. z_N (as the reference code of
 * InDetail-IP, RIVAL and InjectFusion do). With `guidance` > 1 every inverse step uses classifier-free
 * guidance on the batch [uncond, cond] (MasaCtrl's `invert`, StyleAligned's `ddim_inversion`).
 */
import type { Checkpoint } from '../components/checkpoint.js';
import type { UNetVariant } from '../components/unet.js';
import type { RGBImage } from '../io/image.js';
import { VaeImageProcessor } from '../io/vae-image-processor.js';
import { InputError } from '../errors.js';
import type { Json } from '../io/config.js';
import { createInverseScheduler } from '../schedulers/index.js';
import { concatRows, rows, type Tensor } from '../tensor.js';
import { report, type RunControl } from './progress.js';
import { phaseDone } from './common.js';
import { validateSampling } from './text-to-image.js';
import { conditioningRows, defaultMicroConditioning, type Conditioning, type MicroConditioning } from '../components/prompt-conditioner.js';
import { doClassifierFreeGuidance, guide } from './guidance.js';

export interface InversionOptions extends RunControl {
  prompt: string;
  /** SDXL: the second encoder's prompt and micro-conditioning (default time ids: [h, w, 0, 0, h, w]). */
  prompt2?: string;
  micro?: Partial<MicroConditioning>;
  /** diffusers' clip_skip for the inversion prompt (and a guided inversion's unconditional text). */
  clipSkip?: number;
  steps?: number;
  /**
   * Classifier-free guidance scale of the inverse steps: > 1 runs the UNet on [uncond, cond] and inverts with
   * uncond + g (cond - uncond); <= 1 (default 1) conditions on the prompt alone.
   */
  guidance?: number;
  /** The scheduler config to invert with (default: the model's; a method's official run may override entries). */
  schedulerConfig?: { file: string; raw: Record<string, Json> };
  /** The unconditional text of a guided inversion; default null = "" (zeros on SDXL models with force_zeros_for_empty_prompt). */
  negativePrompt?: string | null;
  /** Keep the h-space (mid-block output) of every UNet call, keyed by timestep (InjectFusion's content). */
  captureHSpace?: boolean;
  /** Output size (the image is resized when it differs); defaults to the image's size floored to the VAE factor. */
  width?: number;
  height?: number;
}

export interface Inversion {
  /** z_0 .. z_N, each [1, C, h, w] */
  readonly chain: Tensor[];
  /** The timesteps visited (ascending). */
  readonly timesteps: number[];
  /** The (guided) noise prediction of each inverse step. */
  readonly noisePreds: Tensor[];
  /** h-space per timestep of the inversion's UNet calls (with captureHSpace). */
  readonly hSpace: Map<number, Tensor>;
  /** Undefined for unconditional (pixel-space) models. */
  readonly promptEmbeds: Tensor | undefined;
  /** What every inversion UNet call was conditioned on (one row); undefined for pixel-space models. */
  readonly conditioning: Conditioning | undefined;
}

/** The image in the model's sampling space: VAE latents (mean x scaling factor), or pixels in [-1, 1] for pixel-space models. */
export async function imageToLatents(ck: Checkpoint, image: RGBImage, size?: { width?: number; height?: number }): Promise<Tensor> {
  if (ck.isPixelSpace()) return new VaeImageProcessor({ vae_scale_factor: 1 }).preprocess(image, { width: size?.width, height: size?.height });
  const vae = ck.autoencoder(); // the tiny VAE when one is set
  const proc = new VaeImageProcessor({ vae_scale_factor: vae.scaleFactor });
  return vae.encodeToLatents(proc.preprocess(image, { width: size?.width, height: size?.height }));
}

export async function invert(ck: Checkpoint, image: RGBImage | Tensor, o: InversionOptions): Promise<Inversion> {
  const steps = o.steps ?? 50, guidance = o.guidance ?? 1;
  validateSampling(steps, 1);
  if (!Number.isFinite(guidance)) throw new InputError(`the inversion guidance must be a number, got ${guidance}`);
  report(o, 'encode', 0, 1);
  const z0 = 'data' in image && image.data instanceof Float32Array ? image as Tensor : await imageToLatents(ck, image as RGBImage, o);
  const factor = ck.isPixelSpace() ? 1 : ck.vae().scaleFactor;
  const micro = defaultMicroConditioning(z0.shape[3]! * factor, z0.shape[2]! * factor, o.micro);
  const cfg = !ck.isPixelSpace() && doClassifierFreeGuidance(guidance);
  // Rows [cond] or [uncond, cond]; `cond` (what the inversion is conditioned on) is the last row.
  const both = ck.isPixelSpace() ? undefined
    : (await ck.conditioner().encode(cfg ? [o.negativePrompt ?? null, o.prompt] : [o.prompt], { clipSkip: o.clipSkip, prompts2: cfg ? [undefined, o.prompt2] : [o.prompt2] })).conditioning(micro);
  const cond = both && (cfg ? conditioningRows(both, 1) : both);
  const emb = cond?.encoderHiddenStates;
  await phaseDone(ck, 'text_encoder', 'text_encoder_2', 'vae');
  const inv = createInverseScheduler(o.schedulerConfig ?? ck.schedulerConfig());
  inv.setTimesteps(steps);
  const unet = ck.unet();
  const chain: Tensor[] = [z0];
  const noisePreds: Tensor[] = [];
  const hSpace = new Map<number, Tensor>();
  const tapMid: UNetVariant | undefined = o.captureHSpace ? { key: 'tap-mid-block', hooks: () => ({}), outputs: ['mid_block'] } : undefined;
  let z = z0;
  for (let i = 0; i < inv.timesteps.length; i++) {
    const t = inv.timesteps[i]!;
    report(o, 'invert', i, inv.timesteps.length);
    const out = await unet.run({ sample: cfg ? concatRows([z, z]) : z, timestep: t, ...both, variant: tapMid });
    const noisePred: Tensor = cfg ? { shape: z.shape, data: guide(out.noisePred, guidance) } : out.noisePred;
    noisePreds.push(noisePred);
    if (out.extra.mid_block) hSpace.set(t, cfg ? rows(out.extra.mid_block, 1) : out.extra.mid_block);
    z = { shape: z.shape, data: inv.step(noisePred.data, t, z.data).prevSample };
    chain.push(z);
  }
  report(o, 'invert', inv.timesteps.length, inv.timesteps.length);
  await phaseDone(ck, 'unet');
  return { chain, timesteps: [...inv.timesteps], noisePreds, promptEmbeds: emb, conditioning: cond, hSpace };
}
