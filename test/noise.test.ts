import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/errors.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import { maxAbsDiff } from '../src/tensor.js';
import { TorchGenerator, torchSeedToUint64, fmaf } from '../src/noise/torch-generator.js';
import { createNoise, NativeGaussian } from '../src/noise/gaussian.js';

const GOLDENS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/goldens');
const MODELS = ['tiny-sd15', 'tiny-sd21'] as const;

function bitExactCount(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (ua[i] === ub[i]) n++;
  return n;
}

test('torch randn: InDetail-IP initial_noise (manual_seed(82), [2,4,16,16]) is bit-exact', () => {
  const golden = readAllFloat32(path.join(GOLDENS, 'tiny-sd15/indetail_ip.safetensors'))['initial_noise']!;
  assert.deepEqual(golden.shape, [2, 4, 16, 16]);
  const got = new TorchGenerator(82).randn(golden.shape);
  assert.equal(bitExactCount(got, golden.data), 2048);
  assert.equal(maxAbsDiff(got, golden.data), 0);
});

test('torch randn: every torch.randn latent in the goldens is bit-exact', () => {
  const seeds = { 'tiny-sd15': [1002, 1004, 1005], 'tiny-sd21': [1102, 1104, 1105] } as const;
  for (const m of MODELS) {
    const [unetSeed, vaeSeed, pipeSeed] = seeds[m];
    const unet = readAllFloat32(path.join(GOLDENS, m, 'unet.safetensors'))['latents']!;
    const vae = readAllFloat32(path.join(GOLDENS, m, 'vae.safetensors'))['decoder_input_latents']!;
    const pipe = readAllFloat32(path.join(GOLDENS, m, 'pipeline_t2i.safetensors'))['latents_in']!;
    assert.equal(maxAbsDiff(new TorchGenerator(unetSeed).randn(unet.shape), unet), 0, `${m} unet latents`);
    assert.equal(maxAbsDiff(new TorchGenerator(vaeSeed).randn(vae.shape), vae), 0, `${m} vae decoder input`);
    assert.equal(maxAbsDiff(new TorchGenerator(pipeSeed).randn(pipe.shape), pipe), 0, `${m} pipeline latents`);
  }
});

test('torch randn: successive calls continue the stream (scheduler golden inputs, 12 draws)', () => {
  for (const m of MODELS) {
    const meta = JSON.parse(fs.readFileSync(path.join(GOLDENS, m, 'scheduler.json'), 'utf8')) as {
      inputs_source: string; steps: { prefix: string }[]; inverse_steps: { prefix: string }[];
    };
    const seed = Number(/manual_seed\((\d+)\)/.exec(meta.inputs_source)![1]);
    const t = readAllFloat32(path.join(GOLDENS, m, 'scheduler.safetensors'));
    const g = new TorchGenerator(seed);
    // drawn as (model_output, sample) pairs: step 0, inverse step 0, step 1, inverse step 1, ...
    for (let i = 0; i < meta.steps.length; i++) {
      for (const prefix of [meta.steps[i]!.prefix, meta.inverse_steps[i]!.prefix]) {
        assert.equal(maxAbsDiff(g.randn([2, 4, 8, 8]), t[`${prefix}.model_output`]!), 0, `${m} ${prefix}.model_output`);
        assert.equal(maxAbsDiff(g.randn([2, 4, 8, 8]), t[`${prefix}.sample`]!), 0, `${m} ${prefix}.sample`);
      }
    }
  }
});

test('torch randn: small tensors (scalar double path) and rand match well-known torch outputs', () => {
  const close = (got: Float32Array, want: number[]) => {
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 6e-5, `${i}: ${got[i]} vs ${want[i]}`);
  };
  close(new TorchGenerator(0).randn([5]), [1.5410, -0.2934, -2.1788, 0.5684, -1.0845]);
  close(new TorchGenerator(42).randn([3]), [0.3367, 0.1288, 0.2345]);
  close(new TorchGenerator(0).rand([3]), [0.4963, 0.7682, 0.0885]);
  // 16 values: the vectorized Box-Muller path
  close(new TorchGenerator(0).randn([4, 4]), [
    -1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152,
    0.3223, -1.2633, 0.3500, 0.3081, 0.1198, 1.2377, 1.1168, -0.2473,
  ]);
  // the cached second Box-Muller sample carries over to the next call, as in torch
  const g = new TorchGenerator(0);
  const a = g.randn([1]);
  const b = g.randn([1]);
  close(new Float32Array([a[0]!, b[0]!]), [1.5410, -0.2934]);
});

test('torch randn: a tail (numel % 16 != 0) redraws the last 16 uniforms', () => {
  for (const n of [17, 20, 31, 33, 100]) {
    const g = new TorchGenerator(5);
    const x = g.randn([n]);
    const ref = new TorchGenerator(5);
    const full = Math.floor(n / 16) * 16;
    const head = ref.randn([full]);
    // values before the recomputed last 16 come from the full blocks
    assert.equal(maxAbsDiff(x.subarray(0, n - 16), head.subarray(0, n - 16)), 0, `n=${n}`);
    // n uniforms, plus 16 more for the tail
    const raw = new TorchGenerator(5);
    for (let i = 0; i < n + 16; i++) raw.nextUint32();
    assert.equal(g.nextUint32(), raw.nextUint32(), `stream position after n=${n}`);
  }
});

test('torch generator: manual_seed, clone, 64-bit and negative seeds', () => {
  const g = new TorchGenerator(82);
  const first = g.randn([64]);
  assert.notEqual(maxAbsDiff(g.randn([64]), first), 0);
  g.manualSeed(82);
  assert.equal(maxAbsDiff(g.randn([64]), first), 0);
  const c = g.clone();
  assert.equal(maxAbsDiff(c.randn([40]), g.randn([40])), 0);
  // mt19937 takes the low 32 bits; initial_seed keeps all 64
  const big = new TorchGenerator(2n ** 32n + 82n);
  assert.equal(big.initialSeed(), 2n ** 32n + 82n);
  assert.equal(maxAbsDiff(big.randn([64]), first), 0);
  assert.equal(torchSeedToUint64(-1), 2n ** 64n - 1n);
  assert.throws(() => new TorchGenerator(1.5), InputError);
  assert.throws(() => new TorchGenerator(2n ** 64n), InputError);
  assert.throws(() => g.randn([2, -1]), InputError);
  assert.equal(new TorchGenerator().initialSeed(), 67280421310721n);
});

test('fmaf rounds once', () => {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 sits exactly between two floats; a tiny addend decides the side,
  // which rounding through a double would lose
  const a = 1 + 2 ** -12;
  assert.equal(fmaf(a, a, 0), 1 + 2 ** -11); // tie to even
  assert.equal(fmaf(a, a, 2 ** -60), 1 + 2 ** -11 + 2 ** -23);
  assert.equal(fmaf(a, a, -(2 ** -60)), 1 + 2 ** -11);
  assert.equal(fmaf(3, 5, 7), 22);
});

test('torch randn, scalar (non-AVX2) kernel stays within float rounding of the AVX2 golden', () => {
  const golden = readAllFloat32(path.join(GOLDENS, 'tiny-sd15/indetail_ip.safetensors'))['initial_noise']!;
  const got = new TorchGenerator(82, { kernel: 'scalar' }).randn(golden.shape);
  assert.ok(maxAbsDiff(got, golden) < 5e-6);
});

test('createNoise picks the generator by name', () => {
  const golden = readAllFloat32(path.join(GOLDENS, 'tiny-sd15/indetail_ip.safetensors'))['initial_noise']!;
  assert.equal(maxAbsDiff(createNoise('torch', 82).randn(golden.shape), golden), 0);
  assert.ok(createNoise('native', 82) instanceof NativeGaussian);
  assert.throws(() => createNoise('numpy', 1), (e: unknown) => e instanceof InputError && /unknown noise generator "numpy".*torch, native/.test(e.message));
});

test('native generator: deterministic, stream-continuous, mean ~0 and std ~1', () => {
  const a = new NativeGaussian(1234).randn([4, 25_000]);
  assert.equal(maxAbsDiff(new NativeGaussian(1234).randn([100_000]), a), 0);
  assert.notEqual(maxAbsDiff(new NativeGaussian(1235).randn([100_000]), a), 0);
  const g = new NativeGaussian(1234);
  const parts = [g.randn([3]), g.randn([17]), g.randn([80])];
  assert.equal(maxAbsDiff(Float32Array.from(parts.flatMap((p) => [...p])), a.subarray(0, 100)), 0);
  let s = 0, s2 = 0, s3 = 0, s4 = 0, within1 = 0;
  for (const v of a) { s += v; s2 += v * v; s3 += v ** 3; s4 += v ** 4; if (Math.abs(v) < 1) within1++; }
  const n = a.length;
  const mean = s / n;
  const std = Math.sqrt(s2 / n - mean * mean);
  assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 0.015, `std ${std}`);
  assert.ok(Math.abs(s3 / n) < 0.05, `skewness ${s3 / n}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.1, `kurtosis ${s4 / n}`);
  assert.ok(Math.abs(within1 / n - 0.6827) < 0.01, `P(|x|<1) ${within1 / n}`);
  assert.equal(new NativeGaussian(2n ** 70n + 5n).randn([8]).length, 8);
});
