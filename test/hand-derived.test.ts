/**
 * Expectations worked out by hand (or by a few lines of independent arithmetic here) where no official code
 * exists to make a golden: the VCF fusions, InjectFusion's normalized slerp, the asymmetric DDIM step
 * (InjectFusion / Asyrp: x0 from eps(h'), direction from eps(h)), dt_lambda, the omega calibration and the
 * stochastic eta branches with torch-compatible noise; and torch's generator call by call, scalar
 * (< 16 values) Box-Muller path included, against the recorded torch draws (goldens/rng).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { SafetensorsFile, readAllFloat32 } from '../src/io/safetensors.js';
import { normalizedSlerp } from '../src/methods/h-space.js';
import { adainLatents } from '../src/methods/adain.js';
import { fuse } from '../src/methods/vcf/fusion.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { hSpaceSample } from '../src/pipelines/h-space.js';
import { DDIMScheduler } from '../src/schedulers/ddim.js';
import type { Tensor } from '../src/tensor.js';
import { goldenPath } from './helpers.js';

const t3 = (shape: number[], data: number[]): Tensor => ({ shape, data: Float32Array.from(data) });
function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

// ------------------------------------------------------------------------------------------------
// VCF fusions: T = [[1, 2], [3, 4]] (L = 2 text tokens), Yh = [[0, 2], [4, -2]] (N = 2 image tokens), D = 2.

const T = t3([1, 2, 2], [1, 2, 3, 4]), Y = t3([1, 2, 2], [0, 2, 4, -2]), U = t3([1, 2, 2], [-1, -1, -1, -1]);

test('VCF concat: c = [T; Yh], u = [T(""); 0]', () => {
  const r = fuse('concat', T, Y, U);
  assert.deepEqual(r.cond.shape, [1, 4, 2]);
  assert.deepEqual(r.uncond.shape, [1, 4, 2]);
  near(r.cond.data, [1, 2, 3, 4, 0, 2, 4, -2], 0, 'cond');
  near(r.uncond.data, [-1, -1, -1, -1, 0, 0, 0, 0], 0, 'uncond');
});

test('VCF average: c_i = (T_i + mean_j Yh_j) / 2 (mean Yh = [2, 0])', () => {
  const r = fuse('average', T, Y, U);
  assert.deepEqual(r.cond.shape, [1, 2, 2]);
  near(r.cond.data, [1.5, 1, 2.5, 2], 1e-7, 'cond');
  near(r.uncond.data, U.data, 0, 'uncond');
});

test('VCF cross-attention: c = (T + softmax(T Yh^T / sqrt(D)) Yh) / 2, the 1/sqrt(2) scale', () => {
  // Row 0: scores [1*0 + 2*2, 1*4 - 2*2] / sqrt 2 = [2.828427, 0]; w0 = 1 / (1 + e^-2.828427) = 0.9441928
  //   read = w0 [0, 2] + (1 - w0) [4, -2] = [0.2232289, 1.7767711]; c0 = ([1, 2] + read) / 2 = [0.6116144, 1.8883856]
  // Row 1: scores [8, 12 - 8] / sqrt 2 = [5.656854, 2.828427]: the same gap, the same w0, the same read
  //   c1 = ([3, 4] + [0.2232289, 1.7767711]) / 2 = [1.6116144, 2.8883856]
  // (scale 1 instead of 1/sqrt 2 gives w0 = 0.982, c0[0] = 0.536; scale 1/2 gives 0.881, c0[0] = 0.738.)
  const r = fuse('cross-attention', T, Y, U);
  assert.deepEqual(r.cond.shape, [1, 2, 2]);
  near(r.cond.data, [0.6116144, 1.8883856, 1.6116144, 2.8883856], 2e-7, 'cond');
  near(r.uncond.data, U.data, 0, 'uncond');
  // Large logits (1e4 / sqrt 2 apart) stay finite: the softmax subtracts the row maximum. Row 0 reads token 0 only.
  const big = fuse('cross-attention', t3([1, 1, 2], [100, 0]), t3([1, 2, 2], [100, 0, 0, 0]), t3([1, 1, 2], [0, 0]));
  near(big.cond.data, [100, 0], 1e-4, 'large logits');
});

test('VCF fusion: unknown kind and a width mismatch are one-line input errors', () => {
  assert.throws(() => fuse('sum' as never, T, Y, U), /unknown fusion "sum" \(expected one of concat, average, cross-attention\)/);
  assert.throws(() => fuse('concat', T, t3([1, 1, 3], [1, 2, 3]), U), /aligned image tokens have width 3 but the text embeddings 2/);
});

// ------------------------------------------------------------------------------------------------
// AdaIN of latents (InDetail-IP's initial noise, RIVAL's noise AdaIN): per row and channel,
// (x - mean x) / sqrt(var x + eps) * sqrt(var t + eps) + mean t, var unbiased (torch.var), eps 1e-5.

test('AdaIN on two rows and two channels: each channel takes the target channel\'s mean and std', () => {
  // x row 0: channel 0 [1, 2, 3, 4] (mean 2.5, var 5/3), channel 1 [0, 0, 0, 4] (mean 1, var 4);
  // x row 1: channel 0 [4, 3, 2, 1], channel 1 [1, 1, 1, 5] (mean 2, var 4).
  // target: channel 0 [10, 20, 30, 40] (mean 25, var 500/3), channel 1 [-1, 1, -1, 1] (mean 0, var 4/3).
  const x = t3([2, 2, 2, 2], [1, 2, 3, 4, 0, 0, 0, 4, 4, 3, 2, 1, 1, 1, 1, 5]);
  const target = t3([1, 2, 2, 2], [10, 20, 30, 40, -1, 1, -1, 1]);
  const k0 = Math.sqrt(500 / 3 + 1e-5) / Math.sqrt(5 / 3 + 1e-5), k1 = Math.sqrt(4 / 3 + 1e-5) / Math.sqrt(4 + 1e-5);
  const want = [
    ...[1, 2, 3, 4].map((v) => (v - 2.5) * k0 + 25), ...[0, 0, 0, 4].map((v) => (v - 1) * k1),
    ...[4, 3, 2, 1].map((v) => (v - 2.5) * k0 + 25), ...[1, 1, 1, 5].map((v) => (v - 2) * k1),
  ];
  near(adainLatents(x, target).data, want, 4e-6, 'adain');
  // A constant channel has variance 0: only eps keeps it finite, and it maps to the target mean.
  near(adainLatents(t3([1, 1, 2, 2], [2, 2, 2, 2]), t3([1, 1, 2, 2], [1, 3, 1, 3])).data, [2, 2, 2, 2], 0, 'constant channel');
  assert.throws(() => adainLatents(x, t3([1, 1, 2, 2], [1, 2, 3, 4])), /target \[1,1,2,2\] does not fit one row of \[2,2,2,2\]/);
  near(adainLatents(x, target, 1).data.slice(0, 4), [1, 2, 3, 4].map((v) => (v - 2.5) * Math.sqrt(500 / 3 + 1) / Math.sqrt(5 / 3 + 1) + 25), 4e-6, 'eps 1');
});

// ------------------------------------------------------------------------------------------------
// InjectFusion's slerp, per row: h' = sin((1-g) th)/sin th h + sin(g th)/sin th (h_c |h| / |h_c|).

async function slerp(h: number[], c: number[], gamma: number): Promise<Float32Array> {
  const g = new Graph();
  const n = h.length;
  g.output('y', normalizedSlerp(g.input('h', [1, n, 1, 1]), g.input('c', [1, n, 1, 1]), g.input('g', [1, 1, 1, 1])));
  return (await runOnce(g, { h: t3([1, n, 1, 1], h), c: t3([1, n, 1, 1], c), g: t3([1, 1, 1, 1], [gamma]) })).y!.data;
}

test('InjectFusion slerp on hand examples: orthogonal, 60 degrees, nearly parallel (linear fallback)', async () => {
  // h = [1, 0], c = [0, 2] -> c rescaled to |h| = [0, 1], theta = 90 deg; gamma 1/3: [sin 60, sin 30] = [sqrt3/2, 1/2].
  near(await slerp([1, 0], [0, 2], 1 / 3), [Math.sqrt(3) / 2, 0.5], 2e-7, 'orthogonal');
  // |h| kept (2), theta = 60 deg between h = [2, 0] and c = [1, sqrt 3] (|c| = 2); gamma 0.5 -> the bisector at 30 deg.
  near(await slerp([2, 0], [1, Math.sqrt(3)], 0.5), [2 * Math.cos(Math.PI / 6), 2 * Math.sin(Math.PI / 6)], 5e-7, '60 degrees');
  // cos theta > 0.9995: linear interpolation h + g (h_c - h); h = [1, 0], c = [4, 0.04] -> h_c = c / |c| = [0.99995, 0.0099995].
  const hc = [4 / Math.hypot(4, 0.04), 0.04 / Math.hypot(4, 0.04)];
  near(await slerp([1, 0], [4, 0.04], 0.25), [1 + 0.25 * (hc[0]! - 1), 0.25 * hc[1]!], 2e-7, 'parallel');
  near(await slerp([0.3, -0.7], [5, 1], 0), Float32Array.from([0.3, -0.7]), 0, 'gamma 0 keeps h');
});

// ------------------------------------------------------------------------------------------------
// The asymmetric DDIM step on a 4-step schedule whose alphas are easy to write: betas [0.1, 0.2, 0.3, 0.4],
// alphas_cumprod [0.9, 0.72, 0.504, 0.3024]; 2 inference steps -> timesteps [2, 0]; alpha after t = 0 is 1.

const CONFIG = { num_train_timesteps: 4, trained_betas: [0.1, 0.2, 0.3, 0.4], clip_sample: false, set_alpha_to_one: true, steps_offset: 0, prediction_type: 'epsilon', timestep_spacing: 'leading' };
const A = [0.9, 0.72, 0.504, 0.3024];
/** x0 from eps at alpha a, then x_prev = sqrt(ap) x0 + sqrt(1 - ap - s^2) dt epsDir + s z (diffusers' DDIM step, written out). */
function ddim(x: number, epsX0: number, epsDir: number, a: number, ap: number, o: { eta?: number; z?: number; dt?: number } = {}): number {
  const x0 = (x - Math.sqrt(1 - a) * epsX0) / Math.sqrt(a);
  const s = (o.eta ?? 0) * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
  return Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - s * s) * epsDir * (o.dt ?? 1) + s * (o.z ?? 0);
}

test('asymmetric step: x0 from the edited eps, direction from the plain eps; dt_lambda scales the direction; eta 1 adds torch noise', () => {
  const s = new DDIMScheduler(CONFIG);
  s.setTimesteps(2);
  assert.deepEqual([...s.timesteps], [2, 0]);
  const x = [1, -0.5, 2], plain = [0.2, 0.1, -0.3], edited = [0.5, -0.4, 0.6];
  const f = (v: number[]) => Float32Array.from(v);
  const r0 = s.asymmetricStep(f(plain), f(edited), 2, f(x));
  near(r0.prevSample, x.map((v, i) => ddim(v, edited[i]!, plain[i]!, A[2]!, A[0]!)), 2e-6, 'eta 0');
  const r1 = s.asymmetricStep(f(plain), f(edited), 2, f(x), { dtLambda: 0.5 });
  near(r1.prevSample, x.map((v, i) => ddim(v, edited[i]!, plain[i]!, A[2]!, A[0]!, { dt: 0.5 })), 2e-6, 'dt_lambda 0.5');
  const z = new TorchGenerator(3).randn([3]);
  const r2 = s.asymmetricStep(f(plain), f(edited), 2, f(x), { eta: 1, noise: new TorchGenerator(3) });
  near(r2.prevSample, x.map((v, i) => ddim(v, edited[i]!, plain[i]!, A[2]!, A[0]!, { eta: 1, z: z[i]! })), 2e-6, 'eta 1');
  // Swapping the two predictions must change the result (the step really is asymmetric).
  assert.ok(Math.abs(s.asymmetricStep(f(edited), f(plain), 2, f(x)).prevSample[0]! - r0.prevSample[0]!) > 1e-2);
});

/**
 * The h-space sampling loop with a stand-in UNet whose outputs are known: eps(h) = 0.1 x + 0.05 for plain rows
 * and eps(h') = 0.3 x - 0.02 for edited rows. Everything the loop does with them is written out below.
 */
function fakeCheckpoint(): Checkpoint {
  const epsPlain = (v: number) => 0.1 * v + 0.05, epsEdited = (v: number) => 0.3 * v - 0.02;
  const unet = {
    async run(o: { sample: Tensor; feeds?: Record<string, unknown> }) {
      const b = o.sample.shape[0]!, n = o.sample.data.length / b;
      const edited = o.feeds !== undefined; // [plain x B, edited x B] when the edit is on
      const data = Float32Array.from(o.sample.data, (v, j) => (edited && Math.floor(j / n) >= b / 2 ? epsEdited(v) : epsPlain(v)));
      return { noisePred: { shape: o.sample.shape, data }, extra: {} };
    },
  };
  return { unet: () => unet, schedulerConfig: () => ({ raw: CONFIG, file: 'scheduler_config.json' }) } as unknown as Checkpoint;
}
const P = (v: number) => 0.1 * v + 0.05, Q = (v: number) => 0.3 * v - 0.02;
const X_T = [1, -0.5, 2, 0.25];
const runLoop = (o: { omega?: number; etaAt?: (t: number) => number; dtLambdaAt?: (t: number) => number; on?: (t: number) => boolean; seed?: number }) => hSpaceSample(fakeCheckpoint(), {
  xT: t3([1, 4, 1, 1], X_T), steps: 2, edit: { kind: 'inject', masked: false }, hShape: [1, 4, 1, 1],
  plan: (_i, t) => ({ on: (o.on ?? ((tt: number) => tt >= 2))(t), gamma: 0.5, content: t3([1, 4, 1, 1], [1, 1, 1, 1]) }),
  etaAt: o.etaAt ?? (() => 0), dtLambdaAt: o.dtLambdaAt, omega: o.omega, noise: o.seed === undefined ? undefined : new TorchGenerator(o.seed),
});

test('h-space loop: asymmetric step while the edit is on, plain DDIM after; the t-boost eta 1 step draws torch noise', async () => {
  // Edit on at t = 2 (asymmetric), off at t = 0 (plain; alpha_prev = 1 so x_final = x0 of that step).
  const plainLast = (v: number) => ddim(v, P(v), P(v), A[0]!, 1);
  near((await runLoop({})).data, X_T.map((v) => plainLast(ddim(v, Q(v), P(v), A[2]!, A[0]!))), 3e-6, 'deterministic');
  near((await runLoop({ dtLambdaAt: (t) => (t >= 2 ? 0.9985 : 1) })).data, X_T.map((v) => plainLast(ddim(v, Q(v), P(v), A[2]!, A[0]!, { dt: 0.9985 }))), 3e-6, 'dt_lambda');
  // t_boost above 2: eta 1 at t = 2 with the generator's first randn(4); at t = 0 the variance is 0 (alpha_prev = 1).
  const z = new TorchGenerator(7).randn([4]);
  near((await runLoop({ etaAt: () => 1, seed: 7 })).data, X_T.map((v, i) => plainLast(ddim(v, Q(v), P(v), A[2]!, A[0]!, { eta: 1, z: z[i]! }))), 3e-6, 'eta 1');
});

test('h-space loop: omega calibration moves x_t by sqrt(a)(P\' - P) + omega sqrt(1-a)(eps\' - eps), P\' = x0(eps\') std-matched to x0(eps)', async () => {
  const a = A[2]!, omega = 0.6;
  const x0 = (v: number, e: number) => (v - Math.sqrt(1 - a) * e) / Math.sqrt(a);
  const Pp = X_T.map((v) => x0(v, P(v))), Qq = X_T.map((v) => x0(v, Q(v)));
  const stats = (u: number[]) => { const m = u.reduce((s, v) => s + v, 0) / u.length; return { m, sd: Math.sqrt(u.reduce((s, v) => s + (v - m) ** 2, 0) / (u.length - 1)) }; };
  const sp = stats(Pp), sq = stats(Qq);
  const moved = X_T.map((v, i) => v + Math.sqrt(a) * (sq.m + (Qq[i]! - sq.m) * (sp.sd / sq.sd) - Pp[i]!) + omega * Math.sqrt(1 - a) * (Q(v) - P(v)));
  // ... then a plain DDIM step from the moved x_t, and the plain last step.
  const want = moved.map((v) => ddim(ddim(v, P(v), P(v), a, A[0]!), P(ddim(v, P(v), P(v), a, A[0]!)), P(ddim(v, P(v), P(v), a, A[0]!)), A[0]!, 1));
  near((await runLoop({ omega })).data, want, 5e-6, 'omega 0.6');
});

// ------------------------------------------------------------------------------------------------
// torch's CPU generator, draw by draw (goldens/rng/randperm.*: torch 1.13, every value recorded from torch).

test('torch generator: randperm words, rand, scalar randn (< 16: double Box-Muller, cached sine sample) and vector randn, bit for bit', () => {
  const meta = JSON.parse(fs.readFileSync(goldenPath('rng', 'randperm.json'), 'utf8')) as { seeds: number[]; n: number[] };
  const g = readAllFloat32(goldenPath('rng', 'randperm.safetensors'));
  const f = SafetensorsFile.open(goldenPath('rng', 'randperm.safetensors'));
  const bits = (a: Float32Array, b: Tensor, what: string) => assert.deepEqual([...a], [...b.data], what);
  let scalarChecked = 0;
  try {
    for (const s of meta.seeds) {
      const words = new TorchGenerator(s);
      assert.deepEqual(Array.from({ length: 8 }, () => words.nextUint32()), f.readInts(`seed_${s}.mt19937_first_8_words`).data.map(Number), `seed ${s} words`);
      bits(new TorchGenerator(s).randn([1, 4, 16, 16]), g[`seed_${s}.randn_1x4x16x16`]!, `seed ${s} randn 1x4x16x16`);
      for (const n of meta.n) {
        const k = `seed_${s}.n_${n}`;
        const gen = new TorchGenerator(s);
        // randperm(n): forward Fisher-Yates, one word per position (written here from the recorded rule).
        const perm = Array.from({ length: n }, (_, i) => i);
        for (let i = 0; i < n - 1; i++) { const z = i + (gen.nextUint32() % (n - i)); [perm[i], perm[z]] = [perm[z]!, perm[i]!]; }
        assert.deepEqual(perm, f.readInts(`${k}.perm`).data.map(Number), `${k} perm`);
        bits(gen.rand([5]), g[`${k}.rand_5`]!, `${k} rand(5)`);
        bits(gen.randn([3]), g[`${k}.randn_3`]!, `${k} randn(3): scalar path, third value from a fresh pair`);
        bits(gen.randn([16]), g[`${k}.randn_16`]!, `${k} randn(16): vector path`);
        bits(gen.randn([1]), g[`${k}.randn_1`]!, `${k} randn(1): the cached sine sample, across the vector draw`);
        bits(gen.randn([21]), g[`${k}.randn_21`]!, `${k} randn(21): vector path with a redrawn tail`);
        scalarChecked += 4;
      }
    }
  } finally {
    f.close();
  }
  assert.equal(scalarChecked, 100);
});
