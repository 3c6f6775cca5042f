/**
 * The self-attention baselines users compare InDetail-IP against, on the same mechanism:
 * - kv-concat (RIVAL, dvlab-research/RIVAL): every attn1, reference K/V only above t_align, [ref; own]
 *   below, reference in both CFG branches; initial latent = inverted z_T with its positions permuted;
 *   guided noise AdaIN'd to the reference's above t_early.
 * - kv-replace (MasaCtrl, TencentARC/MasaCtrl, MutualSelfAttentionControl + the real-image notebook): at
 *   steps range(startStep, 50) the transformer blocks range(startLayer, 16) (forward order) take the source
 *   row's K/V, per CFG branch; the source row is denoised from the guided inversion's z_T, and so is the
 *   target (methods/masactrl.ts holds the official run's other settings).
 * - style-aligned (google/style-aligned, style_aligned_transfer_sdxl.ipynb): every attn1, queries and keys
 *   AdaIN'd toward the reference's, one softmax over [ref; own] with the reference keys scaled by
 *   shared_score_scale and shared_score_shift added to their logits; every UNet GroupNorm's statistics
 *   shared with the reference; the official run's scheduler, inversion and reference-row schedule.
 */
import { InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { torchRandperm } from '../noise/randperm.js';
import { TorchGenerator } from '../noise/torch-generator.js';
import type { Tensor } from '../tensor.js';
import { adainLatents } from './adain.js';
import { MASACTRL_RUN } from './masactrl.js';
import type { GuidanceMode, OfficialRun, ReferenceMethod } from './method.js';
import { CONCAT, PLAIN, REPLACE } from './reference-attention.js';

/** Official RIVAL's timesteps: reference-only K/V (t_align) and noise AdaIN (t_early) above them. */
export const KV_CONCAT_DEFAULTS = { tAlign: 600, tEarly: 600 } as const;
/** Official MasaCtrl's STEP and LAYER: K/V replaced from this step and this self-attention layer on. */
export const KV_REPLACE_DEFAULTS = { startStep: 4, startLayer: 10 } as const;

export interface KVConcatOptions {
  guidanceMode?: GuidanceMode;
  tAlign?: number;
  tEarly?: number;
  /** Start from the inverted z_T with permuted positions (true, RIVAL) or AdaIN'd noise (false). */
  permutedInit?: boolean;
  noiseAdain?: boolean;
  /**
   * Draw the permutation as official RIVAL does: `torch.manual_seed(seed); torch.randperm(h*w)` (one
   * draw per generated image, continuing the stream). Without it the permutation is ranked from the
   * run's noise source.
   */
  permutationSeed?: number | bigint;
}

export function kvConcat(o: KVConcatOptions = {}): ReferenceMethod {
  const tAlign = o.tAlign ?? KV_CONCAT_DEFAULTS.tAlign, tEarly = o.tEarly ?? KV_CONCAT_DEFAULTS.tEarly;
  const w = (t: number) => (t > tAlign ? REPLACE : CONCAT);
  return {
    name: 'kv-concat',
    guidanceMode: o.guidanceMode ?? 'conflicting',
    key: 'kv-concat:all-attn1',
    layer: () => true,
    weights: (s) => ({ cond: w(s.timestep), uncond: (o.guidanceMode ?? 'conflicting') === 'conflicting' ? w(s.timestep) : PLAIN }),
    initialLatents: (noise: Tensor, zT: Tensor, rng: NoiseSource | undefined) => (o.permutedInit === false ? adainLatents(noise, zT)
      : permutedPositions(zT, noise.shape[0]!, o.permutationSeed !== undefined ? torchPermutations(o.permutationSeed) : rng)),
    adjustNoise: o.noiseAdain === false ? undefined : (s, guided, refCond) => (s.timestep > tEarly ? adainLatents(guided, refCond) : guided),
  };
}

/** torch.randperm draws after torch.manual_seed(seed), one per call. */
export function torchPermutations(seed: number | bigint): (n: number) => number[] {
  const gen = new TorchGenerator(seed);
  return (n) => torchRandperm(gen, n);
}

/** RIVAL's initial latent: the inverted z_T with its spatial positions shuffled (channel statistics kept), one permutation per image. */
export function permutedPositions(zT: Tensor, k: number, rng: NoiseSource | ((n: number) => number[]) | undefined): Tensor {
  const [, c, h, w] = zT.shape as [number, number, number, number];
  const n = h * w;
  const out = new Float32Array(k * c * n);
  for (let r = 0; r < k; r++) {
    let perm: number[];
    if (typeof rng === 'function') perm = rng(n);
    else {
      // Rank random keys to get a permutation from the seeded noise source (deterministic per seed).
      const keys = rng ? rng.randn([n]) : Float32Array.from({ length: n }, (_, i) => i);
      perm = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
    }
    // x_t.view(1, C, -1)[:, :, idx]: new position i takes old position perm[i], in every channel.
    for (let ch = 0; ch < c; ch++) for (let i = 0; i < n; i++) out[(r * c + ch) * n + i] = zT.data[ch * n + perm[i]!]!;
  }
  return { shape: [k, c, h, w], data: out };
}

export interface KVReplaceOptions {
  guidanceMode?: GuidanceMode;
  startStep?: number;
  startLayer?: number;
  /** MutualSelfAttentionControl's total_steps: steps at or past it are not controlled (default 50, the official default). */
  totalSteps?: number;
  /** Its total_layers: transformer blocks at or past it are not controlled (default 16: model_type 'SD', also on other UNets). */
  totalLayers?: number;
  /**
   * true: the pre-parity variant: generated rows start from the run's noise (one image per seed) and the
   * reference row is read from the unguided inversion chain; no official-run settings. Default false (official MasaCtrl).
   */
  fromNoise?: boolean;
}

export function kvReplace(steps: number, o: KVReplaceOptions = {}): ReferenceMethod {
  const startStep = o.startStep ?? KV_REPLACE_DEFAULTS.startStep, startLayer = o.startLayer ?? KV_REPLACE_DEFAULTS.startLayer;
  if (!Number.isInteger(startStep) || startStep < 0 || startStep > steps) throw new InputError(`--start-step must be an integer in [0, ${steps}], got ${startStep}`);
  if (!Number.isInteger(startLayer) || startLayer < 0) throw new InputError(`--start-layer must be an integer >= 0, got ${startLayer}`);
  const totalSteps = o.totalSteps ?? 50, totalLayers = o.totalLayers ?? 16;
  if (!Number.isInteger(totalSteps) || totalSteps < 0) throw new InputError(`kv-replace total steps must be an integer >= 0, got ${totalSteps}`);
  if (!Number.isInteger(totalLayers) || totalLayers < 0) throw new InputError(`kv-replace total layers must be an integer >= 0, got ${totalLayers}`);
  const mode = o.guidanceMode ?? 'conflicting';
  // step_idx = range(start_step, total_steps); cur_step counts UNet calls of this sampling (not the inversion's).
  const w = (i: number) => (i >= startStep && i < totalSteps ? REPLACE : PLAIN);
  return {
    name: 'kv-replace',
    guidanceMode: mode,
    key: `kv-replace:layers-${startLayer}-${totalLayers}`,
    // layer_idx = range(start_layer, total_layers) over cur_att_layer // 2 = the transformer block's index in
    // forward order (down, mid, up), i.e. the index among attn1 calls.
    layer: (_path, index) => index >= startLayer && index < totalLayers,
    weights: (s) => ({ cond: w(s.index), uncond: mode === 'conflicting' ? w(s.index) : PLAIN }),
    ...(o.fromNoise ? {} : { run: MASACTRL_RUN }),
    // The official batch starts every row from the inverted code (start_code = x_T expanded).
    initialLatents: (noise: Tensor, zT: Tensor) => (o.fromNoise ? noise : repeatRow(zT, noise.shape[0]!)),
  };
}

function repeatRow(row: Tensor, k: number): Tensor {
  const out = new Float32Array(row.data.length * k);
  for (let i = 0; i < k; i++) out.set(row.data, i * row.data.length);
  return { shape: [k, ...row.shape.slice(1)], data: out };
}

export interface StyleAlignedOptions {
  guidanceMode?: GuidanceMode;
  /** shared_score_shift, added to the reference logits; StyleAligned's transfer notebook uses log(2). */
  scoreShift?: number;
  /** shared_score_scale: the reference keys (of the rows other than the reference) are multiplied by it. Default 1. */
  scoreScale?: number;
  /**
   * make_inversion_callback's offset: the reference row starts from the inversion chain's zts[offset]
   * (most noisy first) and is pinned to zts[max(offset + 1, i + 1)] after step i. Default: the notebook's
   * 5 of 50 steps as steps / 10, at least 2 (the reference golden's 8-step run), at most steps - 1.
   */
  inversionOffset?: number;
}

/**
 * StyleAligned's official DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear',
 * clip_sample=False, set_alpha_to_one=False): the constructor's defaults everywhere else, so steps_offset 0
 * (timesteps end at 0) whatever the model's scheduler config says.
 */
export const STYLE_ALIGNED_SCHEDULER = {
  _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
  trained_betas: null, clip_sample: false, set_alpha_to_one: false, steps_offset: 0, prediction_type: 'epsilon',
  thresholding: false, timestep_spacing: 'leading', rescale_betas_zero_snr: false,
} as const;

export function defaultInversionOffset(steps: number): number {
  return Math.max(0, Math.min(steps - 1, Math.max(2, Math.round(steps / 10))));
}

export function styleAligned(steps: number, o: StyleAlignedOptions = {}): ReferenceMethod {
  const mode = o.guidanceMode ?? 'conflicting';
  const shift = o.scoreShift ?? Math.log(2);
  const scale = o.scoreScale ?? 1;
  const offset = o.inversionOffset ?? defaultInversionOffset(steps);
  if (!Number.isFinite(shift)) throw new InputError(`--score-shift must be a finite number, got ${shift}`);
  if (!Number.isFinite(scale)) throw new InputError(`--score-scale must be a finite number, got ${scale}`);
  if (!Number.isInteger(offset) || offset < 0 || offset > steps - 1) throw new InputError(`--inversion-offset must be an integer in [0, ${steps - 1}] (steps - 1), got ${offset}`);
  const run: OfficialRun = {
    schedulerConfig: STYLE_ALIGNED_SCHEDULER,
    // The pipeline's batch is [uncond x (K+1), cond x (K+1)]: the reference's unconditional row gets the
    // negative prompt (None: zeros on SDXL) like every other row.
    referenceUncond: 'negative',
    // inversion.py zeroes the embeddings of '' and hard-codes the time ids (1024, 1024, 0, 0, 1024, 1024).
    inversionUncond: 'zeros',
    // ddim_inversion(pipeline, x0, src_prompt, num_inference_steps, 2): guidance 2 unless --inversion-guidance.
    inversionGuidance: 2,
    inversionMicro: { originalSize: [1024, 1024], cropTopLeft: [0, 0], targetSize: [1024, 1024] },
    // Step 0 reads zts[offset]; the callback after step i writes zts[max(offset + 1, i + 1)] for step i + 1.
    referenceStep: (i) => (i === 0 ? offset : Math.max(offset + 1, i)),
    // torch.randn(len(prompts), ...) draws the reference row's noise too (then overwritten by zts[offset]).
    noiseForReference: true,
  };
  return {
    name: 'style-aligned',
    guidanceMode: mode,
    key: 'style-aligned:all-attn1',
    layer: () => true,
    queryKeyAdain: true,
    scoreShift: shift,
    scoreScale: scale,
    sharedGroupNorm: true,
    run,
    weights: () => ({ cond: CONCAT, uncond: mode === 'conflicting' ? CONCAT : PLAIN }),
    initialLatents: (noise: Tensor) => noise,
  };
}
