/**
 * Training-free image-prompt methods: which self-attention layers look at the reference row, with
 * which per-step weights, whether the unconditional branch has a reference too, and how the initial
 * latents are made. The vary pipeline runs any of them; the graph mechanism is reference-attention.ts.
 */
import type { NoiseSource } from '../noise/gaussian.js';
import type { Tensor } from '../tensor.js';
import type { ReferenceWeights } from './reference-attention.js';

export const METHOD_NAMES = ['indetail-ip', 'kv-concat', 'kv-replace', 'style-aligned'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

export const GUIDANCE_MODES = ['conflict-free', 'conflicting'] as const;
/** conflict-free: the reference only in the conditional CFG branch (InDetail-IP); conflicting: in both (RIVAL). */
export type GuidanceMode = (typeof GUIDANCE_MODES)[number];

export interface StepContext {
  /** Step index (0-based) and its timestep. */
  readonly index: number;
  readonly timestep: number;
  readonly steps: number;
}

export interface ReferenceMethod {
  readonly name: MethodName;
  readonly guidanceMode: GuidanceMode;
  /** Everything that shapes the graph besides the rows (for the session cache). */
  readonly key: string;
  /** Does self-attention layer `path` (the `index`-th attn1 in forward order) take part? */
  layer(path: string, index: number): boolean;
  readonly queryKeyAdain?: boolean;
  readonly scoreShift?: number;
  /** Weights for generated rows in each branch at this step. */
  weights(s: StepContext): { cond: ReferenceWeights; uncond: ReferenceWeights };
  /** Initial latents of the generated rows from fresh noise and the inverted z_T. */
  initialLatents(noise: Tensor, zT: Tensor, rng: NoiseSource | undefined): Tensor;
  /** Optional change of the guided noise prediction of the generated rows (RIVAL's early noise AdaIN). */
  adjustNoise?(s: StepContext, guided: Tensor, referenceCond: Tensor): Tensor;
}
