/**
 * The h-space sampling loop (src/pipelines/h-space.ts) and the InjectFusion pipeline (src/pipelines/inject.ts)
 * with stand-in checkpoints whose UNet is a known function of each row. hSpaceSample: eps = 0.1 x + 0.05 + 0.01 c
 * on plain rows and 0.3 x - 0.02 + 0.01 c on edited rows (c: the row's text value); every step is written out
 * here in float64 (two rows, so the omega calibration's per-row stats matter). inject(): a pixel-space stand-in
 * whose feeds are recorded, so the plan (t_edit, gamma ramp, content h at t, mask, t_noise eta, dt_lambda) is
 * checked call by call. No model runs (the pipelines mutation slice's fast file for these two files).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { InputError } from '../src/errors.js';
import type { RGBImage } from '../src/io/image.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { hSpaceSample, hSpaceShape, type HSpaceSamplingOptions } from '../src/pipelines/h-space.js';
import { inject, type InjectOptions } from '../src/pipelines/inject.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import type { Tensor } from '../src/tensor.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';

// 4 training timesteps: 2 steps run t = 2 then t = 0 (alpha_prev = 1 at the last step).
const CONFIG = { num_train_timesteps: 4, trained_betas: [0.1, 0.2, 0.3, 0.4], clip_sample: false, set_alpha_to_one: true, steps_offset: 0, prediction_type: 'epsilon', timestep_spacing: 'leading' };
const A = [0.9, 0.72, 0.504, 0.3024];

interface Call { t: number; rows: number[][]; context: number[]; key: string; feeds: Record<string, number[]> }

function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

function hCheckpoint(calls: Call[], o: { nan?: boolean; pixel?: boolean } = {}): Checkpoint {
  const unet = {
    async run(a: { sample: Tensor; timestep: number; encoderHiddenStates?: Tensor; variant?: { key: string; outputs?: string[] }; feeds?: Record<string, Tensor> }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b;
      const feeds = Object.fromEntries(Object.entries(a.feeds ?? {}).map(([k, v]) => [k, Array.from(v.data)]));
      calls.push({ t: a.timestep, rows: Array.from({ length: b }, (_, r) => Array.from(a.sample.data.subarray(r * n, (r + 1) * n))), context: a.encoderHiddenStates ? Array.from(a.encoderHiddenStates.data) : [], key: a.variant?.key ?? '', feeds });
      const edited = a.feeds !== undefined;
      const c = (r: number) => (a.encoderHiddenStates ? a.encoderHiddenStates.data[r]! : 0);
      const data = Float32Array.from(a.sample.data, (v, j) => {
        const r = Math.floor(j / n);
        if (o.nan) return Number.NaN;
        return edited && r >= b / 2 ? 0.3 * v - 0.02 + 0.01 * c(r) : 0.1 * v + 0.05 + 0.01 * c(r);
      });
      const extra = edited ? { mid_block: { shape: a.sample.shape, data: a.sample.data.map((v) => v + 1) }, 'mid_block.edited': { shape: a.sample.shape, data: a.sample.data.map((v) => v + 2) } } : {};
      return { noisePred: { shape: a.sample.shape, data }, extra };
    },
    arch: { unet: { blockOutChannels: [8, 16, 32] } },
  };
  return { unet: () => unet, isPixelSpace: () => o.pixel ?? false, schedulerConfig: () => ({ raw: CONFIG, file: 'scheduler_config.json' }) } as unknown as Checkpoint;
}

/** diffusers' DDIM step in float64: x0 from epsX0, direction from epsDir (x dt), variance s z. */
function ddim(x: number, epsX0: number, epsDir: number, a: number, ap: number, o: { eta?: number; z?: number; dt?: number } = {}): number {
  const x0 = (x - Math.sqrt(1 - a) * epsX0) / Math.sqrt(a);
  const s = (o.eta ?? 0) * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
  return Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - s * s) * epsDir * (o.dt ?? 1) + s * (o.z ?? 0);
}

const X = [[1, -0.5, 2, 0.25], [0.3, 0.9, -1.2, 0.5]]; // two rows, [2, 4, 1, 1]
const C = [1, 2]; // the rows' text values
const CONTENT = [0.5, -1, 2, 3, 1, 1, -2, 0.25];
const P = (v: number, r: number) => 0.1 * v + 0.05 + 0.01 * C[r]!, Q = (v: number, r: number) => 0.3 * v - 0.02 + 0.01 * C[r]!;
const xT = (): Tensor => ({ shape: [2, 4, 1, 1], data: Float32Array.from(X.flat()) });
const ctx = () => ({ encoderHiddenStates: { shape: [2, 1, 1], data: Float32Array.from(C) } });

function opts(o: Partial<HSpaceSamplingOptions> = {}): HSpaceSamplingOptions {
  return {
    xT: xT(), context: ctx(), steps: 2, edit: { kind: 'inject', masked: false }, hShape: [1, 4, 1, 1],
    plan: (_i, t) => (t === 2 ? { on: true, gamma: 0.5, content: { shape: [2, 4, 1, 1], data: Float32Array.from(CONTENT) } } : { on: false }),
    etaAt: () => 0, ...o,
  };
}

test('h-space loop, two rows: omega calibration std-matches each row on its own; doubled context, feeds, onHSpace, progress', async () => {
  const calls: Call[] = [], events: string[] = [], seen: [number, number[], number[]][] = [];
  const omega = 0.6, a = A[2]!;
  const got = await hSpaceSample(hCheckpoint(calls), opts({ omega, onProgress: (e: ProgressEvent) => events.push(`${e.stage} ${e.step}/${e.total}`), onHSpace: (t, h, e) => seen.push([t, Array.from(h.data), Array.from(e.data)]) }));
  const x0 = (v: number, e: number) => (v - Math.sqrt(1 - a) * e) / Math.sqrt(a);
  const stats = (u: number[]) => { const m = u.reduce((s, v) => s + v, 0) / u.length; return { m, sd: Math.sqrt(u.reduce((s, v) => s + (v - m) ** 2, 0) / (u.length - 1)) }; };
  const moved = X.map((row, r) => {
    const Pp = row.map((v) => x0(v, P(v, r))), Qq = row.map((v) => x0(v, Q(v, r)));
    const sp = stats(Pp), sq = stats(Qq);
    return row.map((v, i) => v + Math.sqrt(a) * (sq.m + (Qq[i]! - sq.m) * (sp.sd / sq.sd) - Pp[i]!) + omega * Math.sqrt(1 - a) * (Q(v, r) - P(v, r)));
  });
  const after = moved.map((row, r) => row.map((v) => ddim(v, P(v, r), P(v, r), a, A[0]!)));
  const want = after.map((row, r) => row.map((v) => ddim(v, P(v, r), P(v, r), A[0]!, 1)));
  near(got.data, want.flat(), 5e-6, 'omega 0.6, two rows');
  assert.deepEqual(got.shape, [2, 4, 1, 1]);
  // the calls: [x, x] with the doubled context and the inject feeds; then the moved x_t (plain, single context); then t = 0
  assert.deepEqual(calls.map((c) => [c.t, c.rows.length, c.context, c.key]), [[2, 4, [1, 2, 1, 2], 'hspace-inject'], [2, 2, [1, 2], ''], [0, 2, [1, 2], '']]);
  near(calls[0]!.rows.flat(), [...X.flat(), ...X.flat()], 1e-7, 'rows [x, x]');
  near(calls[1]!.rows.flat(), moved.flat(), 5e-6, 'the moved x_t');
  near(calls[2]!.rows.flat(), after.flat(), 5e-6, 'after the calibrated step');
  assert.deepEqual(Object.keys(calls[0]!.feeds).sort(), ['hspace_content', 'hspace_gamma', 'hspace_on'].sort());
  const [on, gamma, content] = ['hspace_on', 'hspace_gamma', 'hspace_content'].map((k) => calls[0]!.feeds[k]);
  assert.deepEqual(on, [0, 0, 1, 1]);
  assert.deepEqual(gamma, [0, 0, 0.5, 0.5]);
  near(content!, [...new Array(8).fill(0), ...CONTENT], 0, 'content: zeros on plain rows');
  assert.deepEqual(seen.map((s) => s[0]), [2]);
  near(seen[0]![1], X.flat().map((v) => v + 1), 1e-6, 'onHSpace h: the edited rows');
  near(seen[0]![2], X.flat().map((v) => v + 2), 1e-6, "onHSpace h'");
  assert.deepEqual(events, ['denoise 0/2', 'denoise 1/2', 'denoise 2/2']);
});

test('h-space loop, two rows: asymmetric step, dt_lambda, masked feed, eta noise on plain and edited steps', async () => {
  const calls: Call[] = [];
  const mask: Tensor = { shape: [1, 1, 1, 1], data: Float32Array.of(0.25) };
  const dt = 0.9985;
  const got = await hSpaceSample(hCheckpoint(calls), opts({ edit: { kind: 'inject', masked: true }, mask, dtLambdaAt: (t) => (t === 2 ? dt : 7) }));
  const want = X.map((row, r) => row.map((v) => { const y = ddim(v, Q(v, r), P(v, r), A[2]!, A[0]!, { dt }); return ddim(y, P(y, r), P(y, r), A[0]!, 1); }));
  near(got.data, want.flat(), 5e-6, 'asymmetric + dt_lambda');
  assert.equal(calls[0]!.key, 'hspace-inject-mask');
  assert.deepEqual(calls[0]!.feeds['hspace_mask'], [0.25]);
  // no dtLambdaAt: 1
  const g1 = await hSpaceSample(hCheckpoint([]), opts());
  near(g1.data, X.map((row, r) => row.map((v) => { const y = ddim(v, Q(v, r), P(v, r), A[2]!, A[0]!); return ddim(y, P(y, r), P(y, r), A[0]!, 1); })).flat(), 5e-6, 'dt 1');
  // eta 1 on the edited step: the first randn(8) of the source
  const z = new TorchGenerator(5).randn([8]);
  const e1 = await hSpaceSample(hCheckpoint([]), opts({ etaAt: (t) => (t === 2 ? 1 : 0), noise: new TorchGenerator(5) }));
  near(e1.data, X.map((row, r) => row.map((v, i) => { const y = ddim(v, Q(v, r), P(v, r), A[2]!, A[0]!, { eta: 1, z: z[4 * r + i]! }); return ddim(y, P(y, r), P(y, r), A[0]!, 1); })).flat(), 5e-6, 'eta 1 edited');
  // eta 1 on a plain step (edit off everywhere)
  const e2 = await hSpaceSample(hCheckpoint([]), opts({ plan: () => ({ on: false }), etaAt: (t) => (t === 2 ? 1 : 0), noise: new TorchGenerator(5) }));
  near(e2.data, X.map((row, r) => row.map((v, i) => { const y = ddim(v, P(v, r), P(v, r), A[2]!, A[0]!, { eta: 1, z: z[4 * r + i]! }); return ddim(y, P(y, r), P(y, r), A[0]!, 1); })).flat(), 5e-6, 'eta 1 plain');
  // eta 1 on the calibrated step
  const e3 = await hSpaceSample(hCheckpoint([]), opts({ omega: 0.5, etaAt: (t) => (t === 2 ? 1 : 0), noise: new TorchGenerator(5) }));
  const e3b = await hSpaceSample(hCheckpoint([]), opts({ omega: 0.5 }));
  assert.ok(Math.abs(e3.data[0]! - e3b.data[0]!) > 1e-3, 'eta reaches the calibrated step');
  await assert.rejects(hSpaceSample(hCheckpoint([]), opts({ omega: 0.5, etaAt: () => 1 })), (e: unknown) => e instanceof InputError && /needs variance noise/.test(e.message));
});

test('h-space loop: NaN error, abort after an edited step, pixel previews of each step\'s x0; hSpaceShape', async () => {
  await assert.rejects(hSpaceSample(hCheckpoint([], { nan: true }), opts()),
    (e: unknown) => e instanceof InputError && e.message === 'the h-space edit produced NaN or infinite values');
  const ac = new AbortController();
  const calls: Call[] = [];
  await assert.rejects(hSpaceSample(hCheckpoint(calls), opts({ signal: ac.signal, onHSpace: () => ac.abort() })));
  assert.equal(calls.length, 1, 'stops right after the edited step');
  // previews: pixel space, [1, 3, 1, 1] rows; step 1's x0 is the edited x0, step 2's the plain x0 (= x at t = 0's step)
  const previews: [number, number, string, string, number[]][] = [];
  const x = [0.5, -0.25, 0.75];
  const got = await hSpaceSample(hCheckpoint([], { pixel: true }), {
    xT: { shape: [1, 3, 1, 1], data: Float32Array.from(x) }, steps: 2, edit: { kind: 'inject', masked: false }, hShape: [1, 3, 1, 1],
    plan: (_i, t) => (t === 2 ? { on: true, gamma: 0.5, content: { shape: [1, 3, 1, 1], data: Float32Array.of(1, 1, 1) } } : { on: false }),
    etaAt: () => 0, preview: { every: 1 },
    onProgress: (e) => { if (e.preview) previews.push([e.preview.step, e.total, e.preview.source, e.preview.decoder, Array.from(e.preview.images[0]!.data)]); },
  });
  const q = (v: number) => 0.3 * v - 0.02;
  const x0e = x.map((v) => (v - Math.sqrt(1 - A[2]!) * q(v)) / Math.sqrt(A[2]!));
  const px = (u: number[]) => u.map((v) => Math.round(Math.min(Math.max(v / 2 + 0.5, 0), 1) * 255));
  assert.deepEqual(previews.map((e) => e.slice(0, 4)), [[1, 2, 'x0', 'pixels'], [2, 2, 'x0', 'pixels']]);
  assert.deepEqual(previews[0]![4], px(x0e));
  assert.deepEqual(previews[1]![4], px(Array.from(got.data)));
  // hSpaceShape: the mid block at 2^(levels - 1) downsampling
  assert.deepEqual(hSpaceShape(hCheckpoint([]), [1, 4, 8, 12]), [1, 32, 2, 3]);
  assert.throws(() => hSpaceShape(hCheckpoint([]), [1, 4, 8, 6]), (e: unknown) => e instanceof InputError && e.message === 'sample size 6x8 is not divisible by 4 (the UNet\'s downsampling); resize the image');
  assert.throws(() => hSpaceShape(hCheckpoint([]), [1, 4, 6, 8]), (e: unknown) => e instanceof InputError && e.message === 'sample size 8x6 is not divisible by 4 (the UNet\'s downsampling); resize the image');
});

// ------------------------------------------------------------------------------------------------
// inject(): a pixel-space stand-in (4 x 4 RGB images, mid block [1, 3, 2, 2] = the row's first 12 values + t / 1000).

const SD = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
const mid = (row: number[], t: number) => row.slice(0, 12).map((v) => Math.fround(v + t / 1000));

function injectCheckpoint(calls: Call[], latent?: { texts: (string | null)[][]; decoded: number[] }): Checkpoint {
  const unet = {
    conditional: latent !== undefined,
    arch: { unet: { blockOutChannels: [2, 3] } },
    async run(a: { sample: Tensor; timestep: number; variant?: { key: string }; feeds?: Record<string, Tensor> }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b;
      const rows = Array.from({ length: b }, (_, r) => Array.from(a.sample.data.subarray(r * n, (r + 1) * n)));
      calls.push({ t: a.timestep, rows, context: [], key: a.variant?.key ?? '', feeds: Object.fromEntries(Object.entries(a.feeds ?? {}).map(([k, v]) => [k, Array.from(v.data)])) });
      const fd = a.feeds;
      const shift = (r: number): number => {
        if (!fd || r < b / 2) return 0;
        const c = fd['hspace_content']!.data.subarray(r * 12, (r + 1) * 12);
        return fd['hspace_on']!.data[r]! * (0.05 * fd['hspace_gamma']!.data[r]! + 0.01 * c.reduce((s, v) => s + v, 0) + (fd['hspace_mask'] ? 0.1 * fd['hspace_mask'].data[0]! : 0));
      };
      const data = Float32Array.from(a.sample.data, (v, j) => 0.1 * v + 0.02 + shift(Math.floor(j / n)));
      const h = rows.flatMap((row) => mid(row, a.timestep));
      const extra: Record<string, Tensor> = a.variant ? { mid_block: { shape: [b, 3, 2, 2], data: Float32Array.from(h) } } : {};
      if (fd) extra['mid_block.edited'] = { shape: [b, 3, 2, 2], data: Float32Array.from(h, (v) => v + 1) };
      return { noisePred: { shape: a.sample.shape, data }, extra };
    },
  };
  // The latent stand-in: a 32 x 32 image's every 8th pixel as [1, 3, 4, 4] latents; text values 0.
  const vae = {
    scaleFactor: 8,
    async encodeToLatents(px: Tensor) { return { shape: [1, 3, 4, 4], data: Float32Array.from({ length: 48 }, (_, j) => px.data[Math.floor(j / 16) * 1024 + Math.floor((j % 16) / 4) * 256 + (j % 4) * 8]!) }; },
    async decode(t: Tensor) { latent?.decoded.push(t.data[0]!); return { shape: [1, 3, 32, 32], data: new Float32Array(3 * 1024).fill(0.5) }; },
  };
  const conditioner = { async encode(texts: (string | null)[]) { latent?.texts.push(texts); return new PromptEmbeddings({ shape: [texts.length, 1, 1], data: new Float32Array(texts.length) }, undefined, [], null); } };
  return { unet: () => unet, vae: () => vae, autoencoder: () => vae, conditioner: () => conditioner, isPixelSpace: () => latent === undefined, schedulerConfig: () => ({ raw: SD, file: 'scheduler_config.json' }) } as unknown as Checkpoint;
}

const img = (w: number, h: number, seed: number): RGBImage => ({ width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + seed * 11) % 256) } as RGBImage);
const ORIGINAL = img(4, 4, 1), CONTENT_IMG = img(4, 4, 2);

async function runInject(o: Partial<InjectOptions>, calls: Call[] = []) {
  const warnings: string[] = [];
  const r = await inject(injectCheckpoint(calls), { original: ORIGINAL, content: CONTENT_IMG, steps: 3, noise: new TorchGenerator(3), onWarning: (m) => warnings.push(m), ...o });
  return { r, calls, warnings };
}

/** The sampling calls after the two inversions, and the loop re-run through hSpaceSample with a plan written here. */
async function expectInject(calls: Call[], got: Tensor, o: { gammas: Record<number, number>; eta: (t: number) => number; dt: (t: number) => number; omega?: number; mask?: number[]; seed?: number }) {
  assert.deepEqual(calls.slice(0, 6).map((c) => [c.t, c.key, c.rows.length]), [[1, '', 1], [334, '', 1], [667, '', 1], [1, 'tap-mid-block', 1], [334, 'tap-mid-block', 1], [667, 'tap-mid-block', 1]]);
  const contentH = new Map(calls.slice(3, 6).map((c) => [c.t, mid(c.rows[0]!, c.t)]));
  const sampling = calls.slice(6);
  const key = o.mask ? 'hspace-inject-mask' : 'hspace-inject';
  // the calibrated (omega) step adds a plain call after each edited one
  const want: [number, string][] = [];
  for (const t of [667, 334, 1]) { if (t in o.gammas) { want.push([t, key]); if (o.omega) want.push([t, '']); } else want.push([t, '']); }
  assert.deepEqual(sampling.map((c) => [c.t, c.key]), want);
  for (const c of sampling.filter((s) => s.key !== '')) {
    assert.deepEqual(c.feeds['hspace_on'], [0, 1]);
    assert.deepEqual(c.feeds['hspace_gamma'], [0, Math.fround(o.gammas[c.t]!)], `gamma at ${c.t}`);
    assert.deepEqual(c.feeds['hspace_content'], [...new Array(12).fill(0), ...contentH.get(c.t)!], `content h at ${c.t}`);
    assert.deepEqual(c.feeds['hspace_mask'], o.mask);
  }
  const xT: Tensor = { shape: [1, 3, 4, 4], data: Float32Array.from(sampling[0]!.rows[0]!) };
  const ref = await hSpaceSample(injectCheckpoint([]), {
    xT, steps: 3, edit: { kind: 'inject', masked: o.mask !== undefined }, hShape: [1, 3, 2, 2],
    mask: o.mask ? { shape: [1, 1, 2, 2], data: Float32Array.from(o.mask) } : undefined,
    plan: (_i, t) => (t in o.gammas ? { on: true, gamma: o.gammas[t], content: { shape: [1, 3, 2, 2], data: Float32Array.from(contentH.get(t)!) } } : { on: false }),
    etaAt: o.eta, dtLambdaAt: o.dt, omega: o.omega, noise: new TorchGenerator(o.seed ?? 3),
  });
  assert.deepEqual(Array.from(got.data), Array.from(ref.data), 'final samples');
}

test('inject loop: defaults (t_edit 400, gamma 0.5, t_noise 200, no dt_lambda below 950), content resized, onHSpace, progress, pixel output', async () => {
  const events: string[] = [], seen: [number, number[], number[], number[]][] = [];
  const { r, calls, warnings } = await runInject({ content: img(2, 2, 2), onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}`), onHSpace: (t, h, e, c) => seen.push([t, Array.from(h.data), Array.from(e.data), Array.from(c.data)]) });
  assert.deepEqual(warnings, ["content image is 2x2; resized to the original's 4x4"]);
  await expectInject(calls, r.latents, { gammas: { 667: 0.5 }, eta: (t) => (t <= 200 ? 1 : 0), dt: () => 1 });
  const edited = calls[6]!;
  assert.deepEqual(seen.map((s) => s[0]), [667]);
  assert.deepEqual(seen[0]![1], mid(edited.rows[1]!, 667));
  assert.deepEqual(seen[0]![2], mid(edited.rows[1]!, 667).map((v) => Math.fround(v + 1)));
  assert.deepEqual(seen[0]![3], mid(calls[5]!.rows[0]!, 667));
  const inv = ['encode 0/1', 'invert 0/3', 'invert 1/3', 'invert 2/3', 'invert 3/3'];
  assert.deepEqual(events, [...inv, ...inv, 'denoise 0/3', 'denoise 1/3', 'denoise 2/3', 'denoise 3/3']);
  assert.equal(r.images.length, 1);
  const px = Array.from(r.latents.data.subarray(0, 16), (v) => Math.round(Math.min(Math.max(v / 2 + 0.5, 0), 1) * 255));
  assert.deepEqual([r.images[0]!.width, r.images[0]!.height, r.images[0]!.data[0], r.images[0]!.data[3]], [4, 4, px[0], px[1]]);
  assert.deepEqual(r.truncatedPrompts, []);
  // same size content: no warning; one side different: resized
  assert.deepEqual((await runInject({})).warnings, []);
  assert.deepEqual((await runInject({ content: img(2, 4, 2) })).warnings, ["content image is 2x4; resized to the original's 4x4"]);
  assert.deepEqual((await runInject({ content: img(4, 2, 2) })).warnings, ["content image is 4x2; resized to the original's 4x4"]);
  // no onWarning: the warnings are dropped, not a TypeError
  const quiet = await runInject({ content: img(2, 2, 2), tEdit: 999, onWarning: undefined });
  assert.equal(quiet.r.images.length, 1);
});

test('inject loop: gamma ramp over every step from t_edit 0, a mask image, dt_lambda from dt_end on injected steps only, t_noise; omega', async () => {
  const red = { width: 4, height: 4, data: Uint8Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? 255 : 0)) } as RGBImage;
  const a = await runInject({ tEdit: 0, gamma: [0, 0.8], mask: red, dtLambda: 0.5, dtEnd: 300, tNoise: 500 });
  await expectInject(a.calls, a.r.latents, { gammas: { 667: 0, 334: 0.4, 1: 0.8 }, mask: new Array(4).fill(Math.fround(76 / 255)), eta: (t) => (t <= 500 ? 1 : 0), dt: (t) => (t === 334 ? 0.5 : 1) });
  const b = await runInject({ tEdit: 334, gamma: 0.3, omega: 0.7, tNoise: 0 });
  await expectInject(b.calls, b.r.latents, { gammas: { 667: 0.3, 334: 0.3 }, omega: 0.7, eta: (t) => (t <= 0 ? 1 : 0), dt: () => 1 });
  // eta 1 at t = t_noise itself
  const e = await runInject({ tNoise: 334 });
  await expectInject(e.calls, e.r.latents, { gammas: { 667: 0.5 }, eta: (t) => (t <= 334 ? 1 : 0), dt: () => 1 });
  const c = await runInject({ tEdit: 999 });
  assert.deepEqual(c.warnings, ['no step has t >= --t-edit 999: nothing is injected']);
  await expectInject(c.calls, c.r.latents, { gammas: {}, eta: (t) => (t <= 200 ? 1 : 0), dt: () => 1 });
  const d = await runInject({ tEdit: 667, dtEnd: 667 });
  await expectInject(d.calls, d.r.latents, { gammas: { 667: 0.5 }, eta: (t) => (t <= 200 ? 1 : 0), dt: (t) => (t === 667 ? 0.9985 : 1) });
});

test('inject loop, latent model: VAE latents, the prompt (default "") conditions both inversions, decoded output', async () => {
  for (const [prompt, want] of [['a cat', 'a cat'], [undefined, '']] as const) {
    const lat = { texts: [] as (string | null)[][], decoded: [] as number[] };
    const r = await inject(injectCheckpoint([], lat), { original: img(32, 32, 1), content: img(32, 32, 2), prompt, steps: 3, noise: new TorchGenerator(3) });
    assert.deepEqual(lat.texts, [[want], [want]]);
    assert.deepEqual(r.latents.shape, [1, 3, 4, 4]);
    assert.deepEqual(lat.decoded, [r.latents.data[0]]);
    assert.deepEqual([r.images.length, r.images[0]!.width, r.images[0]!.height, r.images[0]!.data[0]], [1, 32, 32, 191]);
  }
});

test('inject loop: one-line errors and cancellation in each phase', async () => {
  const err = (p: Promise<unknown>, message: string) => assert.rejects(p, (e: unknown) => e instanceof InputError && e.message === message, message);
  await err(runInject({ tEdit: 1000 }), '--t-edit must be an integer timestep in [0, 1000), got 1000');
  await err(runInject({ tNoise: -1 }), '--t-noise must be an integer timestep in [0, 1000), got -1');
  await err(runInject({ gamma: 1.5 }), 'gamma must be in [0, 1], got 1.5');
  await err(runInject({ original: img(5, 4, 1), content: img(5, 4, 1) }), 'sample size 5x4 is not divisible by 2 (the UNet\'s downsampling); resize the image');
  for (const [at, n] of [['invert 1/3', 2], ['invert 1/3#2', 5], ['denoise 1/3', 8]] as const) {
    const ac = new AbortController();
    const calls: Call[] = [];
    let invs = 0;
    await assert.rejects(runInject({ signal: ac.signal, onProgress: (e) => {
      const s = `${e.stage} ${e.step}/${e.total}`;
      if (s === 'invert 1/3') invs++;
      if ((at === 'invert 1/3' && invs === 1 && s === at) || (at === 'invert 1/3#2' && invs === 2 && s === 'invert 1/3') || (at === 'denoise 1/3' && s === at)) ac.abort();
    } }, calls));
    assert.equal(calls.length, n, `aborted at ${at}`);
  }
});
