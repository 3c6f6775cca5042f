/**
 * Text-to-image as diffusers' StableDiffusionPipeline: prompt (and negative prompt) embeddings,
 * classifier-free guidance when guidance > 1 (rows [uncond x K, cond x K] in one UNet call),
 * DDIM steps, VAE decode. Returns final latents and images.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { composeVariants, type UNetVariant } from '../components/unet.js';
import { controlNetFeeds, controlNetVariant, prepareControls, type ControlInput } from '../components/controlnet.js';
import type { ImageEncoder } from '../components/image-encoder.js';
import { guidanceRows, ipAdapterSetup, type IPAdapterInput } from '../adapters/ip-adapter/prepare.js';
import type { Feed } from '../graph/session.js';
import { InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { createScheduler } from '../schedulers/index.js';
import { concatRows, hasNonFinite, type Tensor } from '../tensor.js';
import { doClassifierFreeGuidance, guide } from './guidance.js';
import { report } from './progress.js';
import { previewHook, type PreviewOptions } from './preview.js';
import { asEmbeddings, concatEmbeddings, defaultMicroConditioning, type Conditioning, type ConditioningOptions, type PromptEmbeddings } from '../components/prompt-conditioner.js';
import { decodeLatents, latentShape, phaseDone, samplesToImages, type GeneratedImages, type SamplingOptions } from './common.js';

export interface TextToImageOptions extends SamplingOptions, ConditioningOptions {
  /** A --scheduler name (schedulers/index.ts SCHEDULERS); default: the class the model's scheduler_config.json names. */
  scheduler?: string;
  /** Overrides the scheduler config's timestep_spacing (leading, trailing, linspace). */
  timestepSpacing?: string;
  eta?: number;
  /** Conditioning given directly ([1, L, D] each, or PromptEmbeddings with SDXL's pooled output) instead of encoding prompt / negativePrompt (fused embeddings, PNO). */
  embeddings?: { cond: Tensor | PromptEmbeddings; uncond: Tensor | PromptEmbeddings };
  /** ControlNets with their condition images (at the output size) and scales. */
  controls?: readonly ControlInput[];
  /** IP-Adapters with their image prompts and scales (several at once: their attentions add up). */
  ipAdapters?: readonly IPAdapterInput[];
  /** The CLIP image encoder for the IP-Adapters (default: the model's image_encoder/); a folder or an encoder. */
  imageEncoder?: ImageEncoder | string;
  /** Skip the VAE (output_type='latent'). */
  latentsOnly?: boolean;
  /** Per-step hook for methods: a UNet variant and its feeds for this step. */
  variantForStep?: (i: number, t: number) => { variant: UNetVariant; feeds: Record<string, Feed> } | undefined;
  /** Called after each step with the latents (tests, callbacks). */
  onStepEnd?: (i: number, t: number, latents: Tensor) => void;
  /** Decoded previews of the x0 prediction every N steps, reported as progress events. */
  preview?: PreviewOptions;
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
  // Pixel-space UNet2DModels (DDPM) have no VAE and no text: the "latents" are the image itself.
  const pixel = !unet.conditional;
  const factor = pixel ? 1 : ck.autoencoder().scaleFactor;
  const scheduler = createScheduler(o.scheduler, ck.schedulerConfig(), { timestepSpacing: o.timestepSpacing });
  const shape = latentShape(factor, unet.inChannels, k, o.width ?? unet.sampleSize * factor, o.height ?? unet.sampleSize * factor);
  let latents = initialLatents(shape, o.latents, o.noise);
  const preview = previewHook(ck, o);

  report(o, 'encode', 0, 1);
  // A UNet that embeds the guidance scale (LCM) runs no unconditional branch (diffusers likewise).
  const cfg = !pixel && !unet.embedsGuidance && doClassifierFreeGuidance(guidance);
  let context: Conditioning | undefined;
  let truncated: readonly string[] = [];
  const micro = defaultMicroConditioning(shape[3]! * factor, shape[2]! * factor, o.micro);
  if (!pixel && o.embeddings) {
    const addition = unet.config.addition;
    const cond = asEmbeddings(o.embeddings.cond, addition), uncond = asEmbeddings(o.embeddings.uncond, addition);
    context = (cfg ? concatEmbeddings([uncond.repeat(k), cond.repeat(k)]) : cond.repeat(k)).conditioning(micro);
  } else if (!pixel) {
    // A missing negative prompt is null: SDXL models with force_zeros_for_empty_prompt then use zeros.
    const prompts = cfg ? [o.negativePrompt ?? null, o.prompt] : [o.prompt];
    const emb = await ck.conditioner().encode(prompts, { clipSkip: o.clipSkip, prompts2: cfg ? [o.negativePrompt2, o.prompt2] : [o.prompt2] });
    truncated = emb.truncated;
    context = (cfg ? concatEmbeddings([emb.rows(0).repeat(k), emb.rows(1).repeat(k)]) : emb.rows(0).repeat(k)).conditioning(micro);
  } else if (o.controls?.length) {
    throw new InputError('ControlNets need a text-conditioned model (Stable Diffusion), not a pixel-space UNet2DModel');
  }
  report(o, 'encode', 1, 1);
  await phaseDone(ck, 'text_encoder', 'text_encoder_2');

  const controls = prepareControls(o.controls ?? [], shape[3]! * factor, shape[2]! * factor, factor);
  const control = controlNetVariant(controls);
  const ip = await ipAdapterSetup(ck, o.ipAdapters, o.imageEncoder);
  scheduler.setTimesteps(steps);
  latents = scaleByInitNoiseSigma(latents, scheduler.initNoiseSigma);
  const ts = scheduler.timesteps;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    report(o, 'denoise', i, ts.length);
    const scaled = { shape: latents.shape, data: scheduler.scaleModelInput(latents.data, t) };
    const input = cfg ? concatRows([scaled, scaled]) : scaled;
    const v = o.variantForStep?.(i, t);
    const variant = composeVariants([control, ip?.variant, v?.variant]);
    const feeds = { ...controlNetFeeds(controls, () => 1, input.shape[0]!), ...ip?.feeds(guidanceRows(cfg, k)), ...v?.feeds };
    const { noisePred } = await unet.run({ sample: input, timestep: t, ...context, timestepCond: unet.guidanceCond(guidance, input.shape[0]!), variant, feeds });
    const eps = cfg ? guide(noisePred, guidance) : noisePred.data;
    const out = scheduler.step(eps, t, latents.data, { eta: o.eta ?? 0, noise: o.noise });
    latents = { shape: latents.shape, data: out.prevSample };
    o.onStepEnd?.(i, t, latents);
    await preview?.(i + 1, ts.length, out.predOriginalSample ? { shape: latents.shape, data: out.predOriginalSample } : undefined, latents);
  }
  report(o, 'denoise', ts.length, ts.length);
  await phaseDone(ck, 'unet');
  if (hasNonFinite(latents)) throw new InputError('sampling produced NaN or infinite latents (check the model weights and --guidance)');
  const images = o.latentsOnly ? [] : pixel ? samplesToImages(latents) : await decodeLatents(ck.autoencoder(), latents, o);
  return { latents, images, truncatedPrompts: truncated };
}

/** diffusers' prepare_latents: latents * scheduler.init_noise_sigma (a float32 product; 1 leaves them as given). */
export function scaleByInitNoiseSigma(latents: Tensor, sigma: number): Tensor {
  if (sigma === 1) return latents;
  const s = Math.fround(sigma);
  return { shape: latents.shape, data: latents.data.map((v) => v * s) };
}

export function initialLatents(shape: readonly number[], given: Tensor | undefined, noise: NoiseSource | undefined): Tensor {
  if (given) {
    if (given.shape.join(',') !== shape.join(',')) throw new InputError(`--latents has shape [${given.shape.join(', ')}] but this run needs [${shape.join(', ')}]`);
    return given;
  }
  if (!noise) throw new InputError('no initial latents and no noise source (give --latents or --seed)');
  return { shape, data: noise.randn(shape) }; // unit noise; textToImage scales it by init_noise_sigma
}
