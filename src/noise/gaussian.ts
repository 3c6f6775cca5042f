/**
 * Seeded standard-normal noise. Two sources, chosen by name:
 * - `torch`: PyTorch's CPU `torch.randn` bit for bit (see torch-generator.ts), so a seed gives the same
 *   latents as diffusers with `torch.manual_seed(seed)` on the CPU;
 * - `native`: a fast generator of our own, xoshiro128** (Blackman & Vigna) seeded through SplitMix64,
 *   with Box-Muller on 53-bit uniforms, both outputs of each pair used. Deterministic for a given
 *   seed on every platform that runs the same JavaScript engine; it does not reproduce torch.
 * Both continue their stream across calls, like a torch.Generator.
 */
import { InputError } from '../errors.js';
import { TorchGenerator } from './torch-generator.js';

export interface NoiseSource {
  /** Standard-normal float32 samples for a tensor of this shape (row-major), continuing the stream. */
  randn(shape: readonly number[]): Float32Array;
}

export const NOISE_KINDS = ['torch', 'native'] as const;
export type NoiseKind = (typeof NOISE_KINDS)[number];

/** xoshiro128** + Box-Muller. Seeds: any integer number (safe range) or bigint; only its low 64 bits count. */
export class NativeGaussian implements NoiseSource {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number | bigint) {
    let x: bigint;
    if (typeof seed === 'bigint') x = seed;
    else {
      if (!Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
      x = BigInt(seed);
    }
    x = BigInt.asUintN(64, x);
    // SplitMix64 expands the seed into the 128-bit state (never all zero for distinct outputs).
    const a = splitmix64(x);
    const b = splitmix64(a.state);
    this.s0 = Number(a.value & 0xffffffffn);
    this.s1 = Number(a.value >> 32n);
    this.s2 = Number(b.value & 0xffffffffn);
    this.s3 = Number(b.value >> 32n);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit output of xoshiro128**. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * 2 ** -53;
  }

  private normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u1 = 1 - this.nextDouble(); // (0, 1]: log never sees 0
    const u2 = this.nextDouble();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  randn(shape: readonly number[]): Float32Array {
    let n = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new InputError(`randn: shape [${shape.join(', ')}] must be non-negative integers`);
      n *= d;
    }
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const MASK64 = (1n << 64n) - 1n;

function splitmix64(state: bigint): { state: bigint; value: bigint } {
  const s = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return { state: s, value: z ^ (z >> 31n) };
}

/**
 * A noise source by name. `torch` ≡ `torch.Generator().manual_seed(seed)` on the CPU; `native` is the
 * faster xoshiro128** generator. An unknown name is the user's error (it usually comes from a flag).
 */
export function createNoise(kind: NoiseKind | (string & {}), seed: number | bigint): NoiseSource {
  switch (kind) {
    case 'torch': return new TorchGenerator(seed);
    case 'native': return new NativeGaussian(seed);
    default: throw new InputError(`unknown noise generator "${kind}" (expected one of: ${NOISE_KINDS.join(', ')})`);
  }
}
