/**
 * InDetail-IP (seed 001; official code bttkm82/InDetail-IP): the decoder's self-attention layers attend
 * to the inverted reference at the same timestep; Stratified Attention (separate softmaxes, weighted
 * (lP a + lG b) / (lP + lG)) for the first S steps, one softmax over [ref; own] afterwards; the reference
 * only in the conditional branch (conflict-free guidance); initial noise AdaIN'd to the inverted z_T.
 */
import { InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { adainLatents } from './adain.js';
import type { GuidanceMode, ReferenceMethod, StepContext } from './method.js';
import { CONCAT, PLAIN, stratified } from './reference-attention.js';

export interface InDetailIPOptions {
  guidanceMode?: GuidanceMode;
  /** Steps (from the first) that use Stratified Attention; default 10 of 50 (scaled to the step count). */
  stratifiedSteps?: number;
  lambdaP?: number;
  lambdaG?: number;
  /** AdaIN the initial noise to the inverted latent (default true). */
  adain?: boolean;
  /** A ControlNet is active: the stratified default becomes 25 of 50 steps. */
  controlnet?: boolean;
}

export function defaultStratifiedSteps(steps: number, controlnet = false): number {
  return Math.round(((controlnet ? 25 : 10) / 50) * steps);
}

export function inDetailIP(steps: number, o: InDetailIPOptions = {}): ReferenceMethod {
  const lambdaP = o.lambdaP ?? 1, lambdaG = o.lambdaG ?? 1;
  if (!(lambdaP >= 0 && lambdaG >= 0)) throw new InputError(`--lambda-p and --lambda-g must be >= 0, got ${lambdaP} and ${lambdaG}`);
  if (lambdaP + lambdaG === 0) throw new InputError('--lambda-p and --lambda-g are both 0: Stratified Attention would divide by zero');
  const strat = o.stratifiedSteps ?? defaultStratifiedSteps(steps, o.controlnet);
  if (!Number.isInteger(strat) || strat < 0 || strat > steps) throw new InputError(`--stratified-steps must be an integer in [0, ${steps}] (the number of steps), got ${strat}`);
  const mode = o.guidanceMode ?? 'conflict-free';
  const weightsAt = (s: StepContext) => (s.index < strat ? stratified(lambdaP, lambdaG) : CONCAT);
  return {
    name: 'indetail-ip',
    guidanceMode: mode,
    key: 'indetail-ip:up-attn1',
    layer: (path) => path.startsWith('up_blocks.'),
    weights: (s) => ({ cond: weightsAt(s), uncond: mode === 'conflicting' ? weightsAt(s) : PLAIN }),
    initialLatents: (noise: Tensor, zT: Tensor) => (o.adain === false ? noise : adainLatents(noise, zT)),
  };
}
