/** Classifier-free guidance on a UNet output whose rows are [uncond..., cond...]. */
import type { Tensor } from '../tensor.js';

/** uncond + g * (cond - uncond), in float32 steps as torch computes it. */
export function classifierFreeGuidance(uncond: Float32Array, cond: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(cond.length);
  const g = Math.fround(scale);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(uncond[i]! + Math.fround(g * Math.fround(cond[i]! - uncond[i]!)));
  return out;
}

/** Split a [2K, ...] prediction into its uncond and cond halves and mix them. */
export function guide(pred: Tensor, scale: number): Float32Array {
  const half = pred.data.length / 2;
  return classifierFreeGuidance(pred.data.subarray(0, half), pred.data.subarray(half), scale);
}

export function doClassifierFreeGuidance(scale: number): boolean {
  return scale > 1;
}
