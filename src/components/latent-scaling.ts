/**
 * z_0 = (mean - shift_factor) * scaling_factor as torch computes it: a float32 tensor times (or minus) a Python
 * float is a float32 operation on the scalar rounded to float32 first (diffusers' `latent_dist.mean * 0.18215`).
 * The product with the double 0.18215 differs from torch's by one ulp in about 40% of the elements (402 of 1024
 * in goldens/tiny-sd15/vae: `scaled_mean`).
 */
import type { Tensor } from '../tensor.js';

export function scaleLatents(mean: Tensor, scalingFactor: number, shiftFactor = 0): Tensor {
  const s = Math.fround(scalingFactor), shift = Math.fround(shiftFactor);
  const data = new Float32Array(mean.data.length);
  for (let i = 0; i < data.length; i++) {
    const v = shift ? Math.fround(mean.data[i]! - shift) : mean.data[i]!;
    data[i] = Math.fround(v * s); // the double product of two floats is exact: one rounding, as float32 arithmetic
  }
  return { shape: mean.shape, data };
}
