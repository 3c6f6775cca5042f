/** AdaIN on latents [B, C, h, w]: per-channel spatial mean/std replaced by a target's (torch.var unbiased, eps 1e-5). */
import type { Tensor } from '../tensor.js';

function channelStats(data: Float32Array, offset: number, n: number, eps: number): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < n; i++) s += data[offset + i]!;
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) { const d = data[offset + i]! - mean; ss += d * d; }
  const variance = Math.fround(ss / (n - 1)); // torch accumulates in double, returns float32
  return { mean: Math.fround(mean), std: Math.fround(Math.sqrt(Math.fround(variance + Math.fround(eps)))) };
}

/** Each row of `x` gets, per channel, the mean and std of `target` (one row, broadcast). */
export function adainLatents(x: Tensor, target: Tensor, eps = 1e-5): Tensor {
  const [b, c] = x.shape as [number, number];
  const n = x.data.length / (b * c);
  if (target.data.length !== c * n) throw new Error(`adainLatents: target [${target.shape}] does not fit one row of [${x.shape}]`);
  const out = new Float32Array(x.data.length);
  for (let ch = 0; ch < c; ch++) {
    const t = channelStats(target.data, ch * n, n, eps);
    for (let r = 0; r < b; r++) {
      const off = (r * c + ch) * n;
      const s = channelStats(x.data, off, n, eps);
      for (let i = 0; i < n; i++) {
        out[off + i] = Math.fround(Math.fround(Math.fround(Math.fround(x.data[off + i]! - s.mean) / s.std) * t.std) + t.mean);
      }
    }
  }
  return { shape: x.shape, data: out };
}
