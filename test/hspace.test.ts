import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { readImageRGB, type RGBImage } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { normalizedSlerp } from '../src/methods/h-space.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { edit } from '../src/pipelines/edit.js';
import { inject, type InjectOptions } from '../src/pipelines/inject.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { DDIMScheduler } from '../src/schedulers/ddim.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-hs-'));
const norm = (t: Float32Array): number => Math.sqrt(t.reduce((s, v) => s + v * v, 0));
const cosine = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + v * b[i]!, 0) / (norm(a) * norm(b));
const rms = (a: Float32Array, b: Float32Array): number => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length);
const solid = (w: number, h: number, v: number): RGBImage => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });

test('normalized slerp: gamma 0 is h exactly, the norm of h is kept, the angle to the content shrinks linearly', async () => {
  const g = new Graph();
  const h = g.input('h', [2, 8, 4, 4]), c = g.input('c', [2, 8, 4, 4]), gamma = g.input('g', [2, 1, 1, 1]);
  g.output('y', normalizedSlerp(h, c, gamma));
  const hv = new NativeGaussian(5).randn([256]), cv = new NativeGaussian(6).randn([256]).map((v) => 3 * v);
  for (const gm of [0, 0.3, 0.7, 1]) {
    const y = (await runOnce(g, { h: { shape: [2, 8, 4, 4], data: hv }, c: { shape: [2, 8, 4, 4], data: cv }, g: { shape: [2, 1, 1, 1], data: new Float32Array([gm, gm]) } })).y!;
    for (let r = 0; r < 2; r++) {
      const yr = y.data.subarray(r * 128, (r + 1) * 128), hr = hv.subarray(r * 128, (r + 1) * 128), cr = cv.subarray(r * 128, (r + 1) * 128);
      if (gm === 0) assert.deepEqual([...yr], [...hr]);
      assert.ok(Math.abs(norm(yr) / norm(hr) - 1) < 1e-5, `norm kept at gamma ${gm}`);
      const theta = Math.acos(cosine(hr, cr));
      assert.ok(Math.abs(Math.acos(Math.min(1, cosine(yr, cr))) - (1 - gm) * theta) < 1e-3, `angle at gamma ${gm}`);
    }
  }
});

test('the asymmetric step equals the plain DDIM step when h\' = h, and takes x0 from the edited prediction', () => {
  const s = new DDIMScheduler({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, steps_offset: 1, set_alpha_to_one: false, clip_sample: false });
  s.setTimesteps(10);
  const x = new NativeGaussian(1).randn([64]), e = new NativeGaussian(2).randn([64]), e2 = new NativeGaussian(3).randn([64]);
  assert.deepEqual(s.asymmetricStep(e, e, 501, x).prevSample, s.step(e, 501, x).prevSample);
  const mixed = s.asymmetricStep(e, e2, 501, x).prevSample;
  const a = s.alphasCumprod[501]!, ap = s.alphasCumprod[401]!;
  for (let i = 0; i < 64; i++) {
    const x0 = (x[i]! - Math.sqrt(1 - a) * e2[i]!) / Math.sqrt(a);
    assert.ok(Math.abs(mixed[i]! - (Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * e[i]!)) < 1e-5);
  }
});

for (const m of ['tiny-sd15', 'tiny-ddpm']) {
  const dir = modelDir(m);
  const originalFile = goldenPath(m, 'inversion_input.png');
  const base = async (): Promise<InjectOptions> => {
    const original = await readImageRGB(originalFile);
    const content = await readImageRGB(goldenPath('tiny-sd15', 'vae_input.png'));
    return { original, content, steps: 6, tEdit: 300, tNoise: 0, noise: new NativeGaussian(1), onWarning: () => {} };
  };

  test(`InjectFusion (${m}): gamma 0 and a zero mask are the plain reconstruction; a ones mask equals no mask`, async () => {
    const ck = openCheckpoint(dir);
    const o = await base();
    const inv = await invert(ck, o.original, { prompt: '', steps: 6 });
    const plain = await textToImage(ck, { scheduler: 'ddim', prompt: '', steps: 6, guidance: 1, latents: inv.chain[6]!, latentsOnly: true, width: o.original.width, height: o.original.height });
    const g0 = await inject(ck, { ...o, gamma: 0 });
    assert.equal(maxAbsDiff(g0.latents, plain.latents), 0, 'gamma 0');
    const zeroMask = await inject(ck, { ...o, gamma: 0.8, mask: solid(o.original.width, o.original.height, 0) });
    assert.equal(maxAbsDiff(zeroMask.latents, plain.latents), 0, 'zero mask');
    const full = await inject(ck, { ...o, gamma: 0.8 });
    const onesMask = await inject(ck, { ...o, gamma: 0.8, mask: solid(13, 7, 255) }); // another size: resized
    assert.equal(maxAbsDiff(onesMask.latents, full.latents), 0, 'ones mask');
    assert.ok(maxAbsDiff(full.latents, plain.latents) > 1e-4, 'injection changes the result');
  });

  test(`InjectFusion (${m}): as gamma grows, the h the decoder uses moves toward the content's and the result moves away from the plain reconstruction`, async () => {
    const ck = openCheckpoint(dir);
    const o = await base();
    const cos: number[] = [], dist: number[] = [];
    let plain: Tensor | undefined;
    for (const gamma of [0, 0.25, 0.5, 0.75, 1]) {
      let s = 0, n = 0;
      const r = await inject(ck, { ...o, gamma, onHSpace: (_t, _h, e, c) => { s += cosine(e.data, c.data); n++; } });
      plain ??= r.latents;
      cos.push(s / n);
      dist.push(rms(r.latents.data, plain.data));
    }
    console.log(`${m} inject: mean cos(h', h_content) ${cos.map((c) => c.toFixed(3)).join(' ')}; rms(result - plain) ${dist.map((d) => d.toFixed(3)).join(' ')}`);
    for (let i = 1; i < cos.length; i++) {
      assert.ok(cos[i]! > cos[i - 1]!, `cos(h', h_content) increases with gamma: ${cos}`);
      assert.ok(dist[i]! > dist[i - 1]!, `distance from the plain result increases with gamma: ${dist}`);
    }
    assert.ok(cos[4]! > 0.999);
  });
}

function deltaFile(name: string, c: number, temb: number, scale = 1): string {
  const rnd = new NativeGaussian(9);
  const w = (shape: number[], s: number): { shape: number[]; data: Float32Array } => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
  const f = path.join(tmp, name);
  writeSafetensors(f, {
    'conv1.weight': w([c, c, 1, 1], 0.2 * scale), 'conv1.bias': w([c], 0.1), 'temb_proj.weight': w([c, temb], 0.1), 'temb_proj.bias': w([c], 0.1),
    'norm2.weight': { shape: [c], data: new Float32Array(c).fill(1) }, 'norm2.bias': w([c], 0.1), 'conv2.weight': w([c, c, 1, 1], 0.5), 'conv2.bias': w([c], 0.1),
  });
  return f;
}

test('Asyrp edit: strength 0 is the plain reconstruction; the result moves further as the strength grows (SD and pixel DDPM)', async () => {
  for (const m of ['tiny-sd15', 'tiny-ddpm']) {
    const ck = openCheckpoint(modelDir(m));
    const image = await readImageRGB(goldenPath(m, 'inversion_input.png'));
    const attribute = deltaFile(`${m}.safetensors`, 64, 128);
    const run = (strength: number) => edit(ck, { image, attribute, strength, steps: 6, tEdit: 300, tBoost: 0 });
    const inv = await invert(ck, image, { prompt: '', steps: 6 });
    const plain = await textToImage(ck, { scheduler: 'ddim', prompt: '', steps: 6, guidance: 1, latents: inv.chain[6]!, latentsOnly: true, width: image.width, height: image.height });
    assert.equal(maxAbsDiff((await run(0)).latents, plain.latents), 0);
    const d = [];
    for (const c of [0.25, 0.5, 1]) d.push(maxAbsDiff((await run(c)).latents, plain.latents));
    assert.ok(d[0]! > 0 && d[1]! > d[0]! && d[2]! > d[1]!, `${m}: ${d}`);
  }
});

test('h-space bad input: t-edit range, unreadable mask, attribute of the wrong size, content of another size', async () => {
  const bin = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  const img = goldenPath('tiny-ddpm', 'inversion_input.png');
  const base = ['inject', '--model', modelDir('tiny-ddpm'), '--image', img, '--content', goldenPath('tiny-sd15', 'vae_input.png'), '--steps', '3', '--seed', '1', '--out', path.join(tmp, 'i.png')];
  let r = run([...base, '--t-edit', '1000']);
  assert.match(r.stderr, /error: --t-edit must be an integer timestep in \[0, 1000\), got 1000/);
  const bad = path.join(tmp, 'mask.png');
  fs.writeFileSync(bad, 'x');
  r = run([...base, '--mask', bad]);
  assert.match(r.stderr, /error: .*mask\.png: not an image/);
  r = run(base);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: content image is 64x64; resized to the original's 32x32/);
  r = run([...base, '--gamma', '0.5', '--gamma-ramp', '0:1']);
  assert.match(r.stderr, /error: give --gamma or --gamma-ramp, not both/);
  r = run(['edit', '--model', modelDir('tiny-ddpm'), '--image', img, '--attribute', deltaFile('wrong.safetensors', 32, 128), '--steps', '3', '--seed', '1', '--out', path.join(tmp, 'e.png')]);
  assert.match(r.stderr, /error: .*wrong\.safetensors \[conv_in\.weight\]: attribute network has 32 input channels but this UNet's h-space has 64/);
  r = run(['edit', '--model', modelDir('tiny-ddpm'), '--image', img, '--attribute', deltaFile('temb.safetensors', 64, 96), '--steps', '3', '--seed', '1', '--out', path.join(tmp, 'e.png')]);
  assert.match(r.stderr, /error: .*expects a 96-dim time embedding but this UNet's is 128-dim/);
});
