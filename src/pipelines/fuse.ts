/**
 * Visual Concept Fusion generation: the reference image's CLIP tokens go through the trained aligner
 * into the text-embedding space and are fused with the prompt's tokens; optionally Prompt-Noise
 * Optimization first refines the fused conditioning and each image's initial noise for CLIP similarity
 * to the reference (Adam on z_T and c through the whole sampling chain).
 */
import type { Checkpoint } from '../components/checkpoint.js';
import type { ControlInput } from '../components/controlnet.js';
import type { ImageEncoder } from '../components/image-encoder.js';
import type { IPAdapterInput } from '../adapters/ip-adapter/prepare.js';
import { InputError } from '../errors.js';
import { Graph } from '../graph/ir.js';
import { compile } from '../graph/session.js';
import type { RGBImage } from '../io/image.js';
import { readAllFloat32, SafetensorsFile } from '../io/safetensors.js';
import { VaeImageProcessor } from '../io/vae-image-processor.js';
import { clipPixels, towerOfImageEncoder, type ImageFeatureTower } from '../methods/clip-guidance.js';
import { ALIGNER_PARAMS, alignerForward, alignerInputs, alignerShapeOf, type AlignerParams } from '../methods/vcf/aligner.js';
import { fuse, type Fusion } from '../methods/vcf/fusion.js';
import { pnoLossAndGrads } from '../methods/vcf/pno.js';
import { Adam } from '../training/optimizers.js';
import { concatRows, rows, type Tensor } from '../tensor.js';
import { latentShape, type GeneratedImages, type SamplingOptions } from './common.js';
import { report } from './progress.js';
import { initialLatents, textToImage } from './text-to-image.js';
import type { PreviewOptions } from './preview.js';
import { concatEmbeddings, defaultMicroConditioning } from '../components/prompt-conditioner.js';

export interface FuseOptions extends SamplingOptions {
  /** Decoded previews of the x0 prediction every N steps, reported as progress events (`--preview-every`). */
  preview?: PreviewOptions;
  aligner: string;
  reference: RGBImage;
  fusion?: Fusion;
  /** Prompt-Noise Optimization iterations (0: off). */
  pnoSteps?: number;
  pnoLr?: number;
  /** CLIP image tower for PNO's loss (default: the checkpoint's image_encoder). */
  tower?: ImageFeatureTower;
  checkpointing?: boolean;
  controls?: readonly ControlInput[];
  /**
   * IP-Adapters on the sampling (not with PNO). Their image tokens are a separate input of every attn2, never
   * split off encoder_hidden_states, so the text attention reads all of the fused L + N tokens as without them.
   */
  ipAdapters?: readonly IPAdapterInput[];
  /** The CLIP image encoder for the IP-Adapters (default: the model's image_encoder/). */
  imageEncoder?: ImageEncoder | string;
  /** diffusers' clip_skip for the prompt and the negative prompt. */
  clipSkip?: number;
  /** Told when the aligner was trained on another clip skip than this run's. */
  onWarning?: (message: string) => void;
  onPnoLoss?: (image: number, iteration: number, loss: number) => void;
}

/** Aligned image tokens Yh = aligner(vision last hidden state) of the reference, [1, N, D]. */
export async function alignedImageTokens(ck: Checkpoint, alignerFile: string, reference: RGBImage): Promise<Tensor> {
  const ie = ck.imageEncoder();
  // The aligner maps into the token space the UNet reads (SDXL: both encoders' states concatenated).
  const te = { config: { hiddenSize: ck.unet().config.crossAttentionDim } };
  const all = readAllFloat32(alignerFile);
  const shape = alignerShapeOf(all, alignerFile, { dv: ie.config.hiddenSize, dt: te.config.hiddenSize });
  const params = Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, all[n]!])) as AlignerParams;
  const tokens = (await ie.encode([reference])).lastHiddenState;
  const session = await compile(`vcf-aligner:${shape.dv}-${shape.hidden}-${shape.dt}:${tokens.shape.join('x')}`, () => {
    const g = new Graph('vcf_aligner');
    g.output('yh', alignerForward(g.input('image_tokens', tokens.shape), alignerInputs(g, shape)));
    return g;
  });
  return (await session.run({ image_tokens: tokens, ...Object.fromEntries(ALIGNER_PARAMS.map((n) => [`aligner.${n}`, params[n]])) })).yh!;
}

/** The clip skip an aligner file was trained with (its `clip_skip` metadata; undefined for files written before it was recorded). */
function trainedClipSkip(file: string): number | undefined {
  const f = SafetensorsFile.open(file);
  try {
    const v = f.metadata.clip_skip;
    return v === undefined ? undefined : Number(v);
  } finally {
    f.close();
  }
}

export async function fuseGenerate(ck: Checkpoint, o: FuseOptions): Promise<GeneratedImages & { pnoLosses: number[][] }> {
  const steps = o.steps ?? 50, guidance = o.guidance ?? 7.5, k = o.numImages ?? 1, pnoSteps = o.pnoSteps ?? 0;
  if (!Number.isInteger(pnoSteps) || pnoSteps < 0) throw new InputError(`--pno-steps must be an integer >= 0, got ${pnoSteps}`);
  // PNO's gradient chain runs the plain UNet: its (z_T, c) would be optimized for another model than the one sampling.
  if (pnoSteps > 0 && o.ipAdapters?.length) throw new InputError(`--ip-adapter with --pno-steps ${pnoSteps}: Prompt-Noise Optimization runs the UNet without IP-Adapters; use --pno-steps 0 or no --ip-adapter`);
  if (pnoSteps > 0 && o.controls?.length) throw new InputError(`--controlnet with --pno-steps ${pnoSteps}: Prompt-Noise Optimization runs the UNet without ControlNets; use --pno-steps 0 or no --controlnet`);
  const trained = trainedClipSkip(o.aligner), clipSkip = o.clipSkip ?? 0;
  if (trained !== undefined && trained !== clipSkip) o.onWarning?.(`${o.aligner} was trained on text states with clip skip ${trained}, this run uses ${clipSkip} (train-aligner --clip-skip ${clipSkip}, or fuse --clip-skip ${trained})`);
  const yh = await alignedImageTokens(ck, o.aligner, o.reference);
  const emb = await ck.conditioner().encode([o.prompt, o.negativePrompt ?? null], { clipSkip: o.clipSkip });
  const fused = fuse(o.fusion ?? 'concat', emb.rows(0).embeds, yh, emb.rows(1).embeds);
  const unet = ck.unet(), vae = ck.vae();
  const shape = latentShape(vae.scaleFactor, unet.inChannels, k, o.width ?? unet.sampleSize * vae.scaleFactor, o.height ?? unet.sampleSize * vae.scaleFactor);
  const noise = initialLatents(shape, o.latents, o.noise);
  if (pnoSteps === 0) {
    const r = await textToImage(ck, { scheduler: 'ddim', prompt: o.prompt, steps, guidance, numImages: k, latents: noise, embeddings: { cond: emb.rows(0).withEmbeds(fused.cond), uncond: emb.rows(1).withEmbeds(fused.uncond) }, controls: o.controls, ipAdapters: o.ipAdapters, imageEncoder: o.imageEncoder, width: shape[3]! * vae.scaleFactor, height: shape[2]! * vae.scaleFactor, onProgress: o.onProgress, signal: o.signal, preview: o.preview });
    return { ...r, truncatedPrompts: emb.truncated, pnoLosses: [] };
  }
  if (guidance <= 1) throw new InputError('Prompt-Noise Optimization runs with classifier-free guidance (--guidance > 1)');
  // SDXL: the pooled text and time ids of the [u; c] rows, as textToImage conditions the sampling below.
  const added = unet.config.addition
    ? concatEmbeddings([emb.rows(1), emb.rows(0)]).conditioning(defaultMicroConditioning(shape[3]! * vae.scaleFactor, shape[2]! * vae.scaleFactor)).addedCond
    : undefined;
  const tower = o.tower ?? towerOfImageEncoder(ck.imageEncoder());
  // The reference's features, preprocessed exactly as generated images are (x in [-1, 1] -> clip pixels).
  const refPixels = new VaeImageProcessor({ vae_scale_factor: 1, do_resize: false }).preprocess(o.reference);
  const refSession = await compile(`pno-ref:${tower.id}:${refPixels.shape.join('x')}`, () => {
    const g = new Graph('pno_reference');
    g.output('features', tower.features(clipPixels(g.input('x', refPixels.shape), tower)));
    return g;
  });
  const reference = (await refSession.run({ x: refPixels })).features!;
  const latents: Tensor[] = [], conds: Tensor[] = [], losses: number[][] = [];
  for (let i = 0; i < k; i++) {
    const vars = { z: { shape: [1, ...shape.slice(1)], data: rows(noise, i).data.slice() }, c: { shape: fused.cond.shape, data: fused.cond.data.slice() } };
    const adam = new Adam({ lr: o.pnoLr ?? 1e-2 });
    const trace: number[] = [];
    for (let it = 0; it < pnoSteps; it++) {
      report(o, 'pno', i * pnoSteps + it, k * pnoSteps, trace.length ? `loss ${trace[trace.length - 1]!.toFixed(4)}` : undefined);
      const r = await pnoLossAndGrads(ck, tower, { zT: vars.z, c: vars.c, u: fused.uncond, steps, guidance, reference, ...(added ? { added } : {}) }, { checkpointing: o.checkpointing });
      trace.push(r.loss);
      o.onPnoLoss?.(i, it, r.loss);
      adam.step(vars, { z: r.gradZT, c: r.gradC });
    }
    losses.push(trace);
    latents.push(vars.z);
    conds.push(vars.c);
  }
  report(o, 'pno', k * pnoSteps, k * pnoSteps);
  // Generate each image from its optimized noise and conditioning.
  const images = [], finals = [];
  for (let i = 0; i < k; i++) {
    const r = await textToImage(ck, { scheduler: 'ddim', prompt: o.prompt, steps, guidance, latents: latents[i]!, embeddings: { cond: emb.rows(0).withEmbeds(conds[i]!), uncond: emb.rows(1).withEmbeds(fused.uncond) }, width: shape[3]! * vae.scaleFactor, height: shape[2]! * vae.scaleFactor, onProgress: o.onProgress, signal: o.signal, preview: o.preview });
    images.push(...r.images);
    finals.push(r.latents);
  }
  return { latents: concatRows(finals), images, truncatedPrompts: emb.truncated, pnoLosses: losses };
}
