/** Sinusoidal timestep features (diffusers `Timesteps` / get_timestep_embedding) and TimestepEmbedding. */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { exactCos, exactSin } from '../graph/exact-trig.js';
import { engineDevice } from '../graph/session.js';
import { linear, silu } from '../graph/nn.js';

/**
 * emb = t * exp(-ln(10000) * i / (half - freq_shift)), i < half; [sin, cos] (or [cos, sin] when flipped).
 * The frequencies are computed here in float32 steps as torch does; sin/cos run in the graph.
 */
export function timestepFeatures(t: Value, dim: number, flipSinToCos: boolean, freqShift: number): Value {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  const negLog = Math.fround(-Math.log(10000));
  for (let i = 0; i < half; i++) freqs[i] = Math.fround(Math.exp(Math.fround(Math.fround(negLog * i) / (half - freqShift))));
  const args = op.mul(op.reshape(t, [t.dim(0), 1]), op.constFloat(t.graph, [1, half], freqs, 'freqs'));
  // WebGPU's sin/cos are approximations (2^-11 allowed by Vulkan): exact primitives there.
  const exact = engineDevice() === 'webgpu';
  const sin = exact ? exactSin(args) : op.sin(args), cos = exact ? exactCos(args) : op.cos(args);
  const emb = op.concat(flipSinToCos ? [cos, sin] : [sin, cos], 1);
  if (dim % 2 === 1) throw new Error('odd timestep embedding sizes are not supported');
  return emb;
}

/** linear_1 -> SiLU -> linear_2; with `cond` (LCM's guidance embedding) x + cond_proj(cond) goes in. */
export function timestepEmbedding(x: Value, vb: WeightsView, inDim: number, timeEmbedDim: number, cond?: { value: Value; dim: number }): Value {
  const input = cond ? op.add(x, linear(cond.value, vb.pp('cond_proj'), cond.dim, inDim, false)) : x;
  return linear(silu(linear(input, vb.pp('linear_1'), inDim, timeEmbedDim)), vb.pp('linear_2'), timeEmbedDim, timeEmbedDim);
}
