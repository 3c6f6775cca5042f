/**
 * Image prompts without training: invert the reference, then sample with a reference row in the UNet
 * batch whose self-attention keys/values the generated rows read (InDetail-IP and its baselines).
 *
 * Rows of one UNet call (K images), reference rows at the same timestep from the inversion chain:
 *   conflict-free guidance:  [gen_uncond x K, ref_cond, gen_cond x K]            (2K + 1 rows)
 *   conflicting guidance:    [ref_uncond, gen_uncond x K, ref_cond, gen_cond x K] (2K + 2 rows)
 *   no guidance (g <= 1):    [ref_cond, gen_cond x K]                             (K + 1 rows)
 * The official code runs 2K + 2 rows in both modes; rows no branch reads are not computed here. As in
 * the official code, ref_cond is conditioned on the inversion prompt and ref_uncond on "".
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { composeVariants, type UNetVariant } from '../components/unet.js';
import { controlNetFeeds, controlNetVariant, prepareControls, type ControlInput } from '../components/controlnet.js';
import type { ImageEncoder } from '../components/image-encoder.js';
import { ipAdapterSetup, type IPAdapterInput } from '../adapters/ip-adapter/prepare.js';
import type { Graph } from '../graph/ir.js';
import { InputError } from '../errors.js';
import type { RGBImage } from '../io/image.js';
import type { Json } from '../io/config.js';
import type { OfficialRun, ReferenceMethod } from '../methods/method.js';
import { layoutKey, referenceAttentionHooks, weightFeeds, type ReferenceLayout, type ReferenceWeights } from '../methods/reference-attention.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { createScheduler } from '../schedulers/index.js';
import { concatRows, hasNonFinite, rows, type Tensor } from '../tensor.js';
import { decodeLatents, latentShape, phaseDone, referenceAtSize, type GeneratedImages } from './common.js';
import { concatEmbeddings, defaultMicroConditioning, type ConditioningOptions, type PromptEmbeddings } from '../components/prompt-conditioner.js';
import { classifierFreeGuidance, doClassifierFreeGuidance } from './guidance.js';
import { imageToLatents, invert, type Inversion } from './invert.js';
import { report, type RunControl } from './progress.js';
import { previewHook, type PreviewOptions } from './preview.js';
import { initialLatents, validateSampling } from './text-to-image.js';

export interface VaryOptions extends RunControl, Pick<ConditioningOptions, 'prompt2' | 'negativePrompt2' | 'micro' | 'clipSkip'> {
  reference: RGBImage;
  method: ReferenceMethod;
  prompt: string;
  /** One generated image per prompt (times numImages), in order; overrides `prompt` for the generated rows (StyleAligned's prompt list). */
  prompts?: readonly string[];
  /** Caption of the reference for its inversion ("" for cross-prompt generation). Default: the prompt. */
  inversionPrompt?: string;
  negativePrompt?: string;
  steps?: number;
  guidance?: number;
  numImages?: number;
  width?: number;
  height?: number;
  /** Initial noise before the method's AdaIN / permutation, [K, C, h, w]. */
  latents?: Tensor;
  noise?: NoiseSource;
  onWarning?: (message: string) => void;
  /** Classifier-free guidance of the reference's DDIM inversion (MasaCtrl, StyleAligned); default 1 = none. */
  inversionGuidance?: number;
  /** A finished inversion of this reference (z_0 .. z_N at this run's steps) to use instead of inverting it again. */
  inversion?: Inversion;
  /** ControlNets (structure-guided generation): zero for reference rows, and for the unconditional branch during the first `controlUncondSteps` steps. */
  controls?: readonly ControlInput[];
  /** Default 10 of 50 steps (scaled), as the official code's gm_end_tsidx. */
  controlUncondSteps?: number;
  /** IP-Adapters (image prompts through decoupled cross-attention) on the generated rows; the reference rows stay as inverted. */
  ipAdapters?: readonly IPAdapterInput[];
  /** The CLIP image encoder for the IP-Adapters (default: the model's image_encoder/). */
  imageEncoder?: ImageEncoder | string;
  onStepEnd?: (i: number, t: number, latents: Tensor) => void;
  /** Decoded previews of the x0 prediction every N steps, reported as progress events. */
  preview?: PreviewOptions;
  /** Inspection: every UNet output with the row layout (tests, analysis). */
  onUNetOutput?: (i: number, layout: readonly Row[], noisePred: Tensor) => void;
}

export interface VaryResult extends GeneratedImages {
  readonly inversion: Inversion;
  /** UNet rows per denoising step (for cost accounting). */
  readonly rowsPerStep: number;
}

export interface Row { kind: 'ref' | 'gen'; branch: 'uncond' | 'cond' }

export function rowLayout(cfg: boolean, conflicting: boolean, k: number): { rows: Row[]; referenceOf: (number | null)[] } {
  const gen = (branch: Row['branch']): Row[] => Array.from({ length: k }, () => ({ kind: 'gen', branch }));
  const list: Row[] = !cfg
    ? [{ kind: 'ref', branch: 'cond' }, ...gen('cond')]
    : conflicting
      ? [{ kind: 'ref', branch: 'uncond' }, ...gen('uncond'), { kind: 'ref', branch: 'cond' }, ...gen('cond')]
      : [...gen('uncond'), { kind: 'ref', branch: 'cond' }, ...gen('cond')];
  const refIndex = (branch: Row['branch']): number => list.findIndex((r) => r.kind === 'ref' && r.branch === branch);
  return { rows: list, referenceOf: list.map((r) => (r.kind === 'gen' && refIndex(r.branch) >= 0 ? refIndex(r.branch) : null)) };
}

/** The model's scheduler config with a method's official overrides (StyleAligned's own DDIMScheduler). */
export function schedulerConfigOf(ck: Checkpoint, run: OfficialRun): { file: string; raw: Record<string, Json> } {
  const base = ck.schedulerConfig();
  return run.schedulerConfig ? { file: base.file, raw: { ...base.raw, ...run.schedulerConfig } } : base;
}

/**
 * Steps at the start during which the unconditional branch runs without ControlNet residuals, by default: the
 * official structure-guided run's 10 of 50, scaled to `steps` and rounded to the nearest step.
 */
export const defaultControlUncondSteps = (steps: number): number => Math.round((10 / 50) * steps);

export async function vary(ck: Checkpoint, o: VaryOptions): Promise<VaryResult> {
  const steps = o.steps ?? 50, guidance = o.guidance ?? 7.5, perPrompt = o.numImages ?? 1;
  validateSampling(steps, guidance);
  if (!Number.isInteger(perPrompt) || perPrompt < 1) throw new InputError(`--num-images must be an integer >= 1, got ${perPrompt}`);
  if (o.prompts && o.prompts.length === 0) throw new InputError('--prompt: give at least one prompt');
  // The generated rows' prompts: each prompt numImages times (diffusers' num_images_per_prompt order).
  const genPrompts = o.prompts ? o.prompts.flatMap((p) => Array<string>(perPrompt).fill(p)) : Array<string>(perPrompt).fill(o.prompt);
  const k = genPrompts.length;
  const run = o.method.run ?? {};
  const unet = ck.unet();
  if (!unet.conditional) throw new InputError('image-prompt methods need a text-conditioned model (Stable Diffusion); this is a pixel-space UNet2DModel (use `inject` or `edit`)');
  const vae = ck.autoencoder();
  const reference = referenceAtSize(o.reference, vae.scaleFactor, o.width, o.height, o.onWarning);
  const inversionPrompt = o.inversionPrompt ?? o.prompt;

  // 1. Invert the reference: z_0 .. z_N; the reference row at step i is z at the same timestep.
  // MasaCtrl: the reference as its notebook loads it (torch nearest resize, x / 127.5 - 1).
  // (A given inversion needs no encoding of the reference.)
  const encodeReference = (): Promise<Tensor> => (run.referencePixels ? vae.encodeToLatents(run.referencePixels(o.reference, reference.width, reference.height)) : imageToLatents(ck, reference));
  const inversion = o.inversion ?? await invert(ck, await encodeReference(), {
    prompt: inversionPrompt, micro: run.inversionMicro ?? o.micro, clipSkip: o.clipSkip, steps, guidance: o.inversionGuidance ?? (run.inversionGuidance === 'sampling' ? guidance : run.inversionGuidance), schedulerConfig: schedulerConfigOf(ck, run),
    ...(run.inversionUncond === 'zeros' ? { negativePrompt: null } : {}), onProgress: o.onProgress, signal: o.signal,
  });
  if (inversion.chain.length !== steps + 1) throw new InputError(`the inversion has ${inversion.chain.length - 1} steps but this run has ${steps}`);
  const zts = [...inversion.chain].reverse();
  const refStep = (i: number): number => run.referenceStep?.(i) ?? i;

  const shape = latentShape(vae.scaleFactor, unet.config.inChannels, k, reference.width, reference.height);
  // StyleAligned draws the reference row's noise too (row 0, overwritten); the generated rows are rows 1..k of that draw.
  const drawn = !o.latents && run.noiseForReference ? initialLatents([k + 1, ...shape.slice(1)], undefined, o.noise) : undefined;
  const noise = drawn ? rows(drawn, 1, k + 1) : initialLatents(shape, o.latents, o.noise);
  let latents = o.method.initialLatents(noise, zts[0]!, o.noise);

  // 2. Embeddings of every row.
  const cfg = doClassifierFreeGuidance(guidance);
  // A free-running reference needs its own unconditional row for its guidance (whatever the generated rows' mode).
  const conflicting = o.method.guidanceMode === 'conflicting' || (cfg && run.freeReference === true);
  const { rows: layout, referenceOf } = rowLayout(cfg, conflicting, k);
  // A missing negative prompt is null (zeros on SDXL models with force_zeros_for_empty_prompt); the
  // unconditional reference row is conditioned on "" as in the official code.
  // (StyleAligned: the reference's unconditional row gets the negative prompt like the others.)
  const uniquePrompts = [...new Set(genPrompts)];
  const texts = [o.negativePrompt ?? null, inversionPrompt, '', ...uniquePrompts];
  const emb = await ck.conditioner().encode(texts, { clipSkip: o.clipSkip, prompts2: [o.negativePrompt2, undefined, undefined, ...uniquePrompts.map(() => o.prompt2)] });
  await phaseDone(ck, 'text_encoder', 'text_encoder_2');
  const refUncond = run.referenceUncond === 'negative' ? 0 : 2;
  const genOrdinal = (j: number): number => layout.slice(0, j).filter((r) => r.kind === 'gen' && r.branch === layout[j]!.branch).length;
  const embOf = (r: Row, j: number): PromptEmbeddings => (r.kind === 'gen'
    ? emb.rows(r.branch === 'cond' ? 3 + uniquePrompts.indexOf(genPrompts[genOrdinal(j)]!) : 0)
    : emb.rows(r.branch === 'cond' ? 1 : refUncond));
  const context = concatEmbeddings(layout.map(embOf)).conditioning(defaultMicroConditioning(reference.width, reference.height, o.micro));

  // The reference rows' noise predictions are read only by these; otherwise the UNet drops those rows after the last hooked layer.
  const refOutputRead = o.onUNetOutput !== undefined || o.method.adjustNoise !== undefined || run.freeReference === true;
  const refLayout: ReferenceLayout = {
    referenceOf, layer: o.method.layer, queryKeyAdain: o.method.queryKeyAdain, scoreShift: o.method.scoreShift,
    scoreScale: o.method.scoreScale, sharedGroupNorm: o.method.sharedGroupNorm,
    ...(refOutputRead ? {} : { unreadRows: layout.flatMap((r, j) => (r.kind === 'ref' ? [j] : [])) }),
  };
  const refVariant: UNetVariant = { key: `${o.method.key}:${layoutKey(refLayout, '')}`, hooks: (g: Graph) => referenceAttentionHooks(g, refLayout) };
  const controls = prepareControls(o.controls ?? [], reference.width, reference.height, vae.scaleFactor);
  // IP-Adapter tokens go on the generated rows of both branches; reference rows get scale 0 so they keep
  // reproducing the inversion (made without the adapter) whose K/V the generated rows read.
  const ip = await ipAdapterSetup(ck, o.ipAdapters, o.imageEncoder);
  const ipRows = layout.map((r) => (r.kind === 'ref' ? null : r.branch));
  const variant = composeVariants([refVariant, controlNetVariant(controls), ip?.variant])!;
  const uncondOff = o.controlUncondSteps ?? defaultControlUncondSteps(steps);
  if (!Number.isInteger(uncondOff) || uncondOff < 0 || uncondOff > steps) throw new InputError(`control steps without the unconditional branch must be in [0, ${steps}], got ${uncondOff}`);
  const scheduler = createScheduler('ddim', schedulerConfigOf(ck, run));
  scheduler.setTimesteps(steps);
  const ts = scheduler.timesteps;
  const genIdx = (branch: Row['branch']): number[] => layout.map((r, i) => (r.kind === 'gen' && r.branch === branch ? i : -1)).filter((i) => i >= 0);
  const refCondRow = layout.findIndex((r) => r.kind === 'ref' && r.branch === 'cond');
  const refUncondRow = layout.findIndex((r) => r.kind === 'ref' && r.branch === 'uncond');
  // MasaCtrl's source row: denoised from z_T alongside the generated rows (not read from the inversion chain).
  let refLatents = zts[0]!;
  const preview = previewHook(ck, o);

  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    report(o, 'denoise', i, ts.length);
    const ctx = { index: i, timestep: t, steps: ts.length };
    const w = o.method.weights(ctx);
    const perRow: ReferenceWeights[] = layout.filter((_, j) => referenceOf[j] !== null).map((r) => (r.branch === 'cond' ? w.cond : w.uncond));
    const sample = concatRows(layout.map((r, j) => (r.kind === 'ref' ? (run.freeReference ? refLatents : zts[refStep(i)]!) : rows(latents, genIdx(r.branch).indexOf(j)))));
    const rowScale = (_j: number, row: number): number => {
      const r = layout[row]!;
      return r.kind === 'ref' || (r.branch === 'uncond' && i < uncondOff) ? 0 : 1;
    };
    const feeds = { ...weightFeeds(perRow), ...controlNetFeeds(controls, rowScale, layout.length), ...ip?.feeds(ipRows) };
    const { noisePred } = await unet.run({ sample, timestep: t, ...context, variant, feeds });
    o.onUNetOutput?.(i, layout, noisePred);
    const pick = (idx: number[]): Tensor => concatRows(idx.map((j) => rows(noisePred, j)));
    const cond = pick(genIdx('cond'));
    let eps: Tensor = cfg ? { shape: cond.shape, data: classifierFreeGuidance(pick(genIdx('uncond')).data, cond.data, guidance) } : cond;
    if (o.method.adjustNoise) eps = o.method.adjustNoise(ctx, eps, rows(noisePred, refCondRow));
    if (run.freeReference) {
      const rc = rows(noisePred, refCondRow);
      const refEps = cfg ? classifierFreeGuidance(rows(noisePred, refUncondRow).data, rc.data, guidance) : rc.data;
      refLatents = { shape: refLatents.shape, data: scheduler.step(refEps, t, refLatents.data).prevSample };
    }
    const out = scheduler.step(eps.data, t, latents.data);
    latents = { shape: latents.shape, data: out.prevSample };
    o.onStepEnd?.(i, t, latents);
    await preview?.(i + 1, ts.length, out.predOriginalSample ? { shape: latents.shape, data: out.predOriginalSample } : undefined, latents);
  }
  report(o, 'denoise', ts.length, ts.length);
  await phaseDone(ck, 'unet');
  if (hasNonFinite(latents)) throw new InputError('sampling produced NaN or infinite latents');
  const images = await decodeLatents(vae, latents, o);
  return { latents, images, truncatedPrompts: emb.truncated, inversion, rowsPerStep: layout.length };
}
