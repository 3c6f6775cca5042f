/**
 * Noise schedules exactly as diffusers builds them with torch on the CPU (float32 tensors):
 * `torch.linspace(..., dtype=float32)`, `** 2`, `1.0 - betas`, `torch.cumprod`.
 */
import { fmaf } from '../noise/torch-generator.js';

const f = Math.fround;

/**
 * Which CPU `torch.linspace` to reproduce. torch <= 1.13 filled float tensors with a vectorized kernel
 * (8-lane AVX2 `Vectorized::arange(base, step)` over pairs of vectors, scalar tail); torch 2.0 removed
 * the vectorization (pytorch#89048) and computes every element as `start + step*i` /
 * `end - step*(N-1-i)`. The two differ in the last bits (up to ~3 ulp of a scaled_linear beta).
 * In both, GCC contracts `a + b*c` into an FMA in the AVX2 build.
 */
export type TorchLinspaceFlavor = 'torch1' | 'torch2';

/** `torch.linspace(start, end, steps, dtype=torch.float32)` on an x86-64 CPU with AVX2. */
export function torchLinspaceF32(start: number, end: number, steps: number, flavor: TorchLinspaceFlavor = 'torch1'): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f(start);
  const e = f(end);
  if (steps === 1) { out[0] = s; return out; }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  // The scalar element: from the start for the first half, from the end for the second.
  const at = (i: number): number => (i < half ? fmaf(step, i, s) : fmaf(-step, steps - 1 - i, e));
  let i = 0;
  if (flavor === 'torch1') {
    const V = 8;
    // cpu_serial_kernel_vec: two vectors per iteration while 2*V elements remain, then scalar.
    for (; i + 2 * V <= steps; i += 2 * V) {
      for (let v = i; v < i + 2 * V; v += V) {
        const base = at(v);
        out[v] = base;
        for (let k = 1; k < V; k++) out[v + k] = fmaf(k, step, base); // arange: base + k*step
      }
    }
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** `torch.cumprod(x, 0)` for float32 on the CPU: the running product is kept in double (acc_type). */
export function cumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i]!;
    out[i] = acc;
  }
  return out;
}

/** `1.0 - betas` in float32. */
export function oneMinus(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 1 - x[i]!;
  return out;
}

/**
 * diffusers' `betas_for_alpha_bar` (squaredcos_cap_v2): the Glide cosine schedule in Python doubles,
 * then `torch.tensor(betas, dtype=float32)`.
 */
export function betasForAlphaBar(numDiffusionTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    out[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return out;
}

/**
 * diffusers' `rescale_zero_terminal_snr` (arXiv 2305.08891, Algorithm 1), op by op in float32:
 * shift and scale sqrt(alphas_cumprod) so that the last one is exactly 0, then undo the cumprod.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const abarSqrt = cumprodF32(oneMinus(betas)).map(Math.sqrt); // map on a Float32Array stores float32
  const s0 = abarSqrt[0]!;
  const sT = abarSqrt[n - 1]!;
  const scale = f(s0 / f(s0 - sT));
  const abar = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = f(f(abarSqrt[i]! - sT) * scale);
    abar[i] = v * v;
  }
  const out = new Float32Array(n);
  out[0] = 1 - abar[0]!;
  for (let i = 1; i < n; i++) out[i] = 1 - f(abar[i]! / abar[i - 1]!);
  return out;
}
