/**
 * PyTorch's CPU random numbers, bit for bit: `torch.Generator().manual_seed(seed)` followed by
 * `torch.randn(shape, generator=g)` / `torch.rand(...)` (float32), torch 1.13 – 2.x on x86-64.
 *
 * What torch does (aten/src/ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp,
 * core/DistributionsHelper.h, core/TransformationHelper.h, native/cpu/DistributionTemplates.h,
 * native/cpu/avx_mathfun.h):
 * - engine: mt19937 seeded with the low 32 bits of the seed;
 * - float uniform: `(random() & 0xffffff) * 2^-24`, double uniform: `(random64() & (2^53-1)) * 2^-53`
 *   with `random64() = random() << 32 | random()`;
 * - randn of a contiguous float32 tensor with numel >= 16 (`normal_fill`): fill the whole buffer with
 *   float uniforms, Box-Muller over each block of 16 (u1 = 1 - data[j], u2 = data[j+8],
 *   data[j] = r cos(2 pi u2), data[j+8] = r sin(2 pi u2)); when numel % 16 != 0 the LAST 16 slots are
 *   refilled with fresh uniforms and transformed again. On CPUs with AVX2 (every x86-64 wheel on any
 *   recent CPU; AVX512 builds use the AVX2 kernel too because normal_stub is not dispatched to AVX512)
 *   log/sin/cos are the float32 Cephes polynomials of avx_mathfun.h, and GCC contracts their
 *   multiply-adds into FMA instructions. We emulate exactly that, lane by lane, in float32;
 * - randn with numel < 16: `normal_distribution<double>` per element (Box-Muller in double, the sine
 *   half cached in the generator for the next call), then cast to float.
 *
 * The 'scalar' kernel is torch's non-AVX2 fallback (e.g. aarch64 / Apple Silicon wheels), which calls
 * libm logf/cosf/sinf; we use correctly rounded double results rounded to float, which agrees with a
 * good libm almost always but is not guaranteed bit-exact.
 */
import { InputError } from '../errors.js';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;

/** mt19937 with torch's state layout (seed, left, next), so streams continue exactly like torch's. */
export class Mt19937 {
  readonly state = new Uint32Array(N);
  private left = 1;
  private next = 0;

  constructor(seed32: number) {
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let j = 1; j < N; j++) {
      const x = s[j - 1]!;
      s[j] = (Math.imul(1812433253, x ^ (x >>> 30)) + j) >>> 0;
    }
  }

  clone(): Mt19937 {
    const c = new Mt19937(0);
    c.state.set(this.state);
    c.left = this.left;
    c.next = this.next;
    return c;
  }

  private twist(): void {
    const s = this.state;
    let k = 0;
    for (; k < N - M; k++) s[k] = s[k + M]! ^ twistBits(s[k]!, s[k + 1]!);
    for (; k < N - 1; k++) s[k] = s[k + M - N]! ^ twistBits(s[k]!, s[k + 1]!);
    s[N - 1] = s[M - 1]! ^ twistBits(s[N - 1]!, s[0]!);
    this.left = N;
    this.next = 0;
  }

  /** One tempered 32-bit output (torch's `generator->random()`). */
  nextUint32(): number {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

function twistBits(u: number, v: number): number {
  return ((((u & 0x80000000) | (v & 0x7fffffff)) >>> 1) ^ (v & 1 ? MATRIX_A : 0)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// float32 arithmetic helpers

const f = Math.fround;
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

function bitsOf(x: number): number { f32buf[0] = x; return u32buf[0]!; }
function fromBits(u: number): number { u32buf[0] = u >>> 0; return f32buf[0]!; }

/** The float32 neighbour of float32 `r` in the direction of `target`. */
function nextFloatToward(r: number, target: number): number {
  if (r === 0) return target > 0 ? fromBits(1) : -fromBits(1);
  const u = bitsOf(r);
  return fromBits((target > r) === (r > 0) ? u + 1 : u - 1);
}

/**
 * Single-rounding float32 fused multiply-add of float32 inputs. a*b is exact in double; the sum is
 * rounded to double and then to float, which can only go wrong when it lands exactly on a float32
 * midpoint, so that case is settled with the exact residual of the double addition (TwoSum).
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bv = s - p;
  const err = (p - (s - bv)) + (c - bv);
  const r = f(s);
  if (err === 0 || r === s) return r;
  const o = nextFloatToward(r, s);
  if (s === (r + o) / 2) return err > 0 ? Math.max(r, o) : Math.min(r, o);
  return r;
}

// ---------------------------------------------------------------------------------------------
// avx_mathfun.h log256_ps / sincos256_ps, one lane, float32, with GCC's FMA contraction

const SQRTHF = f(0.707106781186547524);
const LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f);
const LOG_Q1 = f(-2.12194440e-4);
const LOG_Q2 = f(0.693359375);
const HALF_BITS = bitsOf(0.5);

/** log256_ps for one lane with x in (0, 1] (u1 = 1 - uniform never reaches 0 or a denormal). */
function avxLog(x: number): number {
  const xb = bitsOf(x);
  let e = f(((xb >>> 23) - 127) + 1);
  let m = fromBits((xb & ~0x7f800000) | HALF_BITS); // mantissa scaled into [0.5, 1)
  const small = m < SQRTHF;
  const tmp = small ? m : 0;
  m = f(m - 1);
  if (small) e = f(e - 1);
  m = f(m + tmp);
  const z = f(m * m);
  let y = LOG_P[0]!;
  for (let i = 1; i < 9; i++) y = fmaf(y, m, LOG_P[i]!); // y = y*x + p_i contracted
  y = f(y * m);
  // `y = y*z; y = y + e*q1`: GCC fuses the multiply it meets first (y*z); e*q1 is rounded on its own.
  y = fmaf(y, z, f(e * LOG_Q1));
  y = f(y - f(z * 0.5));
  m = f(m + y);
  return f(m + f(e * LOG_Q2)); // e*q2 is exact (q2 has 9 significant bits)
}

const DP1 = f(-0.78515625);
const DP2 = f(-2.4187564849853515625e-4);
const DP3 = f(-3.77489497744594108e-8);
const SIN_P0 = f(-1.9515295891e-4);
const SIN_P1 = f(8.3321608736e-3);
const SIN_P2 = f(-1.6666654611e-1);
const COS_P0 = f(2.443315711809948e-5);
const COS_P1 = f(-1.388731625493765e-3);
const COS_P2 = f(4.166664568298827e-2);
const FOPI = f(1.27323954473516);

/** sincos256_ps for one lane, x >= 0 (theta = 2 pi u2). Writes [sin, cos] into out. */
function avxSinCos(x: number, out: Float64Array): void {
  let y = f(x * FOPI);
  let j = Math.trunc(y) | 0;
  j = (j + 1) & ~1;
  y = j; // small even integer, exact in float
  const sinNeg = (j & 4) !== 0;
  const cosNeg = (~(j - 2) & 4) !== 0;
  const sinPoly = (j & 2) === 0; // sine from the sine polynomial, cosine from the cosine one
  // x = ((x - y*DP1) - y*DP2) - y*DP3, each step contracted into an FMA
  x = fmaf(y, DP1, x);
  x = fmaf(y, DP2, x);
  x = fmaf(y, DP3, x);
  const z = f(x * x);
  let c = fmaf(COS_P0, z, COS_P1);
  c = fmaf(c, z, COS_P2);
  c = f(c * z);
  c = fmaf(c, z, -f(z * 0.5)); // `y = y*z; y = y - z*0.5`: the first multiply is the one fused
  c = f(c + 1);
  let s = fmaf(SIN_P0, z, SIN_P1);
  s = fmaf(s, z, SIN_P2);
  s = f(s * z);
  s = fmaf(s, x, x);
  let sinV = sinPoly ? s : c;
  let cosV = sinPoly ? c : s;
  if (sinNeg) sinV = -sinV;
  if (cosNeg) cosV = -cosV;
  out[0] = sinV;
  out[1] = cosV;
}

const TWO_PI_F = f(2 * Math.PI);
const sincosTmp = new Float64Array(2);

/** normal_fill_16_AVX2 on data[o..o+16) (mean 0, std 1: the final fmadd(n, 1, 0) is n itself). */
function normalFill16Avx2(d: Float32Array, o: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - d[o + j]!);
    const u2 = d[o + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * avxLog(u1))));
    avxSinCos(f(TWO_PI_F * u2), sincosTmp);
    d[o + j] = f(radius * sincosTmp[1]!) + 0; // + 0 as the fmadd turns -0 into +0
    d[o + j + 8] = f(radius * sincosTmp[0]!) + 0;
  }
}

/** normal_fill_16 (non-AVX2 builds): libm logf/cosf/sinf, approximated by rounded double results. */
function normalFill16Scalar(d: Float32Array, o: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - d[o + j]!);
    const u2 = d[o + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * f(Math.log(u1)))));
    const theta = f(2 * Math.PI * u2); // 2.0f * pi<double> * u2 in double, stored as float
    d[o + j] = f(radius * f(Math.cos(theta))) + 0;
    d[o + j + 8] = f(radius * f(Math.sin(theta))) + 0;
  }
}

// ---------------------------------------------------------------------------------------------

/** torch's default CPU seed (c10::detail::default_rng_seed_val), used by a fresh `torch.Generator()`. */
export const TORCH_DEFAULT_SEED = 67280421310721n;

export type TorchNormalKernel = 'avx2' | 'scalar';

export interface TorchGeneratorOptions {
  /** Which torch CPU kernel to reproduce for numel >= 16 (default 'avx2': x86-64 with AVX2). */
  kernel?: TorchNormalKernel;
}

/** Seeds accepted by torch.manual_seed: integers in [-2^63, 2^64); negatives wrap to two's complement. */
export function torchSeedToUint64(seed: number | bigint): bigint {
  let s: bigint;
  if (typeof seed === 'bigint') s = seed;
  else {
    if (!Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer (up to 2^53 as a number, or a bigint), got ${seed}`);
    s = BigInt(seed);
  }
  if (s < -(1n << 63n) || s >= 1n << 64n) throw new InputError(`seed ${s} is outside torch's range [-2^63, 2^64)`);
  return BigInt.asUintN(64, s);
}

/** A torch CPU generator: `new TorchGenerator(seed)` ≡ `torch.Generator().manual_seed(seed)`. */
export class TorchGenerator {
  private engine: Mt19937;
  private seed64: bigint;
  /** Box-Muller's second (sine) sample from the scalar path, as torch's next_double_normal_sample. */
  private nextDoubleNormal: number | undefined;
  readonly kernel: TorchNormalKernel;

  constructor(seed: number | bigint = TORCH_DEFAULT_SEED, options: TorchGeneratorOptions = {}) {
    this.kernel = options.kernel ?? 'avx2';
    if (this.kernel !== 'avx2' && this.kernel !== 'scalar') throw new InputError(`unknown torch kernel "${String(this.kernel)}" (expected avx2 or scalar)`);
    this.seed64 = torchSeedToUint64(seed);
    this.engine = new Mt19937(Number(this.seed64 & 0xffffffffn));
  }

  /** `generator.manual_seed(seed)`: restarts the stream and drops the cached normal sample. */
  manualSeed(seed: number | bigint): this {
    this.seed64 = torchSeedToUint64(seed);
    this.engine = new Mt19937(Number(this.seed64 & 0xffffffffn));
    this.nextDoubleNormal = undefined;
    return this;
  }

  /** `generator.initial_seed()`. */
  initialSeed(): bigint { return this.seed64; }

  /** An independent copy that continues the same stream (like `torch.Generator().set_state(g.get_state())`). */
  clone(): TorchGenerator {
    const c = new TorchGenerator(this.seed64, { kernel: this.kernel });
    c.engine = this.engine.clone();
    c.nextDoubleNormal = this.nextDoubleNormal;
    return c;
  }

  /** `generator->random()`: the next raw 32-bit output. */
  nextUint32(): number { return this.engine.nextUint32(); }

  private uniformFloat(): number { return (this.engine.nextUint32() & 0xffffff) * 2 ** -24; }

  private uniformDouble(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    return ((hi & 0x1fffff) * 4294967296 + lo) * 2 ** -53; // low 53 bits of (hi << 32 | lo)
  }

  /** `torch.rand(shape, generator=g)` in float32: [0, 1) on the 2^-24 grid. */
  rand(shape: readonly number[]): Float32Array {
    const out = new Float32Array(checkedNumel(shape));
    for (let i = 0; i < out.length; i++) out[i] = this.uniformFloat();
    return out;
  }

  /** `torch.randn(shape, generator=g, dtype=torch.float32)` on the CPU, continuing this generator's stream. */
  randn(shape: readonly number[]): Float32Array {
    const n = checkedNumel(shape);
    const d = new Float32Array(n);
    if (n >= 16) {
      const fill = this.kernel === 'avx2' ? normalFill16Avx2 : normalFill16Scalar;
      for (let i = 0; i < n; i++) d[i] = this.uniformFloat();
      for (let i = 0; i + 16 <= n; i += 16) fill(d, i);
      if (n % 16 !== 0) {
        for (let i = n - 16; i < n; i++) d[i] = this.uniformFloat();
        fill(d, n - 16);
      }
    } else {
      for (let i = 0; i < n; i++) d[i] = this.normalDouble();
    }
    return d;
  }

  /**
   * at::normal_distribution<double>(0, 1), torch 1.13's form `sqrt(-2 log(1 - u2))`; recent torch writes
   * log1p(-u2), which differs by at most an ulp of a double and so (almost) never after the cast to float.
   */
  private normalDouble(): number {
    if (this.nextDoubleNormal !== undefined) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = undefined;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

function checkedNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new InputError(`randn: shape [${shape.join(', ')}] must be non-negative integers`);
    n *= d;
  }
  if (n > 2 ** 31) throw new InputError(`randn: shape [${shape.join(', ')}] has ${n} elements, too many`);
  return n;
}
