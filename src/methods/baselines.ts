/**
 * The self-attention baselines users compare InDetail-IP against, on the same mechanism:
 * - kv-concat (RIVAL, dvlab-research/RIVAL): every attn1, reference K/V only above t_align, [ref; own]
 *   below, reference in both CFG branches; initial latent = inverted z_T with its positions permuted;
 *   guided noise AdaIN'd to the reference's above t_early.
 * - kv-replace (MasaCtrl, TencentARC/MasaCtrl): from `startStep` on, the attn1 layers from `startLayer`
 *   (of all attn1 layers in forward order) take the reference's K/V, per CFG branch.
 * - style-aligned (google/style-aligned): every attn1, queries and keys AdaIN'd toward the reference's,
 *   one softmax over [ref; own] with log(scale) added to the reference logits.
 */
import { InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { torchRandperm } from '../noise/randperm.js';
import { TorchGenerator } from '../noise/torch-generator.js';
import type { Tensor } from '../tensor.js';
import { adainLatents } from './adain.js';
import type { GuidanceMode, ReferenceMethod } from './method.js';
import { CONCAT, PLAIN, REPLACE } from './reference-attention.js';

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
  const tAlign = o.tAlign ?? 600, tEarly = o.tEarly ?? 600;
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
}

export function kvReplace(steps: number, o: KVReplaceOptions = {}): ReferenceMethod {
  const startStep = o.startStep ?? 4, startLayer = o.startLayer ?? 10;
  if (!Number.isInteger(startStep) || startStep < 0 || startStep > steps) throw new InputError(`--start-step must be an integer in [0, ${steps}], got ${startStep}`);
  if (!Number.isInteger(startLayer) || startLayer < 0) throw new InputError(`--start-layer must be an integer >= 0, got ${startLayer}`);
  const mode = o.guidanceMode ?? 'conflicting';
  const w = (i: number) => (i >= startStep ? REPLACE : PLAIN);
  return {
    name: 'kv-replace',
    guidanceMode: mode,
    key: `kv-replace:from-layer-${startLayer}`,
    layer: (_path, index) => index >= startLayer,
    weights: (s) => ({ cond: w(s.index), uncond: mode === 'conflicting' ? w(s.index) : PLAIN }),
    initialLatents: (noise: Tensor) => noise,
  };
}

export interface StyleAlignedOptions {
  guidanceMode?: GuidanceMode;
  /** exp(shift) multiplies the reference's attention mass; StyleAligned uses log(2) for style transfer. */
  scoreShift?: number;
}

export function styleAligned(o: StyleAlignedOptions = {}): ReferenceMethod {
  const mode = o.guidanceMode ?? 'conflicting';
  const shift = o.scoreShift ?? Math.log(2);
  return {
    name: 'style-aligned',
    guidanceMode: mode,
    key: 'style-aligned:all-attn1',
    layer: () => true,
    queryKeyAdain: true,
    scoreShift: shift,
    weights: () => ({ cond: CONCAT, uncond: mode === 'conflicting' ? CONCAT : PLAIN }),
    initialLatents: (noise: Tensor) => noise,
  };
}
