/**
 * Training-free image-prompt methods: which self-attention layers look at the reference row, with
 * which per-step weights, whether the unconditional branch has a reference too, and how the initial
 * latents are made. The vary pipeline runs any of them; the graph mechanism is reference-attention.ts.
 */
import type { MicroConditioning } from '../components/prompt-conditioner.js';
import type { Json } from '../io/config.js';
import type { RGBImage } from '../io/image.js';
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
  /** StyleAligned: the reference keys scaled by this (shared_score_scale). */
  readonly scoreScale?: number;
  /** StyleAligned: GroupNorm statistics shared with the reference row. */
  readonly sharedGroupNorm?: boolean;
  /** How the method's official run differs from vary's defaults (its parity settings). */
  readonly run?: OfficialRun;
  /** Weights for generated rows in each branch at this step. */
  weights(s: StepContext): { cond: ReferenceWeights; uncond: ReferenceWeights };
  /** Initial latents of the generated rows from fresh noise and the inverted z_T. */
  initialLatents(noise: Tensor, zT: Tensor, rng: NoiseSource | undefined): Tensor;
  /** Optional change of the guided noise prediction of the generated rows (RIVAL's early noise AdaIN). */
  adjustNoise?(s: StepContext, guided: Tensor, referenceCond: Tensor): Tensor;
}

/** The parts of a method's official run that differ from vary's defaults; the vary pipeline applies them. */
export interface OfficialRun {
  /** Scheduler config entries overriding the model's, for the inversion and the sampler. */
  readonly schedulerConfig?: Readonly<Record<string, Json>>;
  /** Text of the unconditional reference row: "" (default) or the generated rows' negative prompt. */
  readonly referenceUncond?: 'empty' | 'negative';
  /** The inversion's unconditional row (with inversion guidance): "" encoded (default) or all-zero embeddings. */
  readonly inversionUncond?: 'empty' | 'zeros';
  /** SDXL time ids of the inversion's UNet calls (default: the image size). */
  readonly inversionMicro?: Partial<MicroConditioning>;
  /** Index into the inversion chain, most noisy first, of the reference row's latents at step i (default i). */
  referenceStep?(i: number): number;
  /** The initial noise is drawn for the reference row too (row 0, then replaced), as the official code does. */
  readonly noiseForReference?: boolean;
  /**
   * The reference rows are denoised from the inverted z_T by the sampler, with their own guidance (prompt:
   * the inversion prompt), instead of being read from the inversion chain (MasaCtrl's source row).
   */
  readonly freeReference?: boolean;
  /** The reference image as the official code loads it: [1, 3, height, width] in [-1, 1] (default: diffusers' preprocessing). */
  referencePixels?(image: RGBImage, width: number, height: number): Tensor;
  /** Without an explicit inversion guidance: 'sampling' = the sampling guidance (MasaCtrl's notebook), a number = that scale (StyleAligned's 2). */
  readonly inversionGuidance?: 'sampling' | number;
}
