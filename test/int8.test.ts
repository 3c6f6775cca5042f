/**
 * --precision int8 (graph/quantize.ts): weight quantization, which layers are quantized, the error of one
 * UNet call, of 20 sampling steps and of the VAE against float32 on the tiny models (bounds about twice
 * the measured values, and a floor showing int8 really ran), the session cache keyed on precision, and
 * the CLI flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { ControlNet } from '../src/components/controlnet.js';
import { Graph } from '../src/graph/ir.js';
import { toOnnx } from '../src/graph/onnx.js';
import { isQuantizedLayer, quantizePerChannel, usePrecision, weightRange } from '../src/graph/quantize.js';
import { configureEngine } from '../src/graph/session.js';
import { readImageRGB } from '../src/io/image.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import { unet2DConditionModel } from '../src/models/unet2d-condition.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import type { Tensor } from '../src/tensor.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';

const SD15 = modelDir('tiny-sd15');
const BIN = path.resolve(path.dirname(FIXTURES), '../dist/src/cli/main.js');

/** ||a - b|| / ||b|| */
function relErr(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  let n = 0, d = 0;
  for (let i = 0; i < a.data.length; i++) { n += (a.data[i]! - b.data[i]!) ** 2; d += b.data[i]! ** 2; }
  return Math.sqrt(n / d);
}

function noise(shape: number[], seed: number): Tensor {
  let s = seed;
  const next = (): number => { s = (s * 16807) % 2147483647; return s / 2147483647; };
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next())) };
}

test('weights: symmetric per output channel, transposed to the GEMM [K, N], round-trip within half a step', () => {
  const w = Float32Array.from([0.6, -1, 0.25, 0, 0, 0, 3, 1.6, -3]); // [3 out, 3 in]
  const { q, scales } = quantizePerChannel(w, 3, 63);
  assert.deepEqual([...scales], [Math.fround(1 / 63), 1, Math.fround(3 / 63)]); // an all-zero channel gets scale 1
  // q is [K=3, N=3]: q[k * 3 + n] = round(w[n][k] / scale[n])
  assert.deepEqual([...q], [38, 0, 63, -63, 0, 34, 16, 0, -63]);
  for (let n = 0; n < 3; n++) for (let k = 0; k < 3; k++) assert.ok(Math.abs(q[k * 3 + n]! * scales[n]! - w[n * 3 + k]!) <= scales[n]! / 2 + 1e-7);
  // conv layout: inner index (c, tap) reordered to K = tap * C + c, as the channels-last im2col lays it out
  const conv = Float32Array.from({ length: 2 * 2 * 4 }, (_, i) => i - 7); // [2 out, 2 in, 2x2]
  const r = quantizePerChannel(conv, 2, 63, (i) => (i % 4) * 2 + Math.floor(i / 4));
  for (let o = 0; o < 2; o++) for (let c = 0; c < 2; c++) for (let t = 0; t < 4; t++) {
    assert.equal(r.q[(t * 2 + c) * 2 + o], Math.round(conv[(o * 2 + c) * 4 + t]! / r.scales[o]!));
  }
  assert.ok(weightRange() === 63 || weightRange() === 127);
});

test('which layers are quantized: convolutions, projections, self-attention, feed-forward; not conv_in/out, time embedding, cross-attention K/V, ControlNet extras', () => {
  for (const k of ['down_blocks.0.resnets.1.conv1.weight', 'up_blocks.1.resnets.2.conv_shortcut.weight', 'down_blocks.0.downsamplers.0.conv.weight',
    'up_blocks.2.attentions.0.proj_in.weight', 'mid_block.attentions.0.transformer_blocks.0.attn1.to_v.weight', 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_q.weight',
    'up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_out.0.weight', 'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight',
    'decoder.mid_block.attentions.0.to_k.weight', 'decoder.up_blocks.0.resnets.0.conv2.weight']) assert.ok(isQuantizedLayer(k), k);
  for (const k of ['conv_in.weight', 'conv_out.weight', 'decoder.conv_in.weight', 'time_embedding.linear_1.weight', 'down_blocks.0.resnets.0.time_emb_proj.weight',
    'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight', 'mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight', 'add_embedding.linear_1.weight',
    'controlnet_cond_embedding.blocks.0.weight', 'controlnet_down_blocks.3.weight', 'controlnet_mid_block.weight', 'post_quant_conv.weight', 'quant_conv.weight']) assert.ok(!isQuantizedLayer(k), k);
});

test('the int8 UNet graph: every quantizable layer quantized, nothing else; float32 graphs unchanged', () => {
  const ck = openCheckpoint(SD15);
  const unet = ck.unet();
  const build = (p: 'fp32' | 'int8'): Graph => {
    const g = usePrecision(new Graph('unet'), p);
    g.output('y', unet2DConditionModel({ sample: g.input('sample', [2, 4, 16, 16]), timestep: g.input('t', [2]), encoderHiddenStates: g.input('c', [2, 77, 32]) }, unet.weights, unet.config));
    return g;
  };
  const count = (g: Graph, opName: string): number => g.nodes.filter((n) => n.op === opName).length;
  const fp = build('fp32'), q = build('int8');
  const keys = [...unet.weights.source.keys()];
  const quantConvs = keys.filter((k) => isQuantizedLayer(k) && unet.weights.source.shape(k).length === 4).length;
  const quantLinears = keys.filter((k) => isQuantizedLayer(k) && unet.weights.source.shape(k).length === 2).length;
  assert.ok(quantConvs > 10 && quantLinears > 10);
  assert.equal(count(q, 'DynamicQuantizeMatMul'), quantLinears);
  // conv_shortcut layers on the up path's skip concatenation are quantized per part (one GEMM each)
  const concatShortcuts = keys.filter((k) => /^up_blocks\.\d+\.resnets\.\d+\.conv_shortcut\.weight$/.test(k)).length;
  assert.equal(count(q, 'MatMulIntegerToFloat'), quantConvs + concatShortcuts);
  assert.equal(count(q, 'Conv'), count(fp, 'Conv') - quantConvs);
  assert.equal(count(q, 'Gemm'), count(fp, 'Gemm') - quantLinears);
  assert.equal(count(fp, 'DynamicQuantizeMatMul') + count(fp, 'MatMulIntegerToFloat'), 0);
  // the int8 weights are stored as int8 initializers (a quarter of the float32 bytes)
  const int8Bytes = [...q.initializers.values()].filter((i) => i.data.dtype === 'int8').reduce((s, i) => s + i.data.data.byteLength, 0);
  const quantFloatBytes = keys.filter(isQuantizedLayer).reduce((s, k) => s + unet.weights.source.shape(k).reduce((a, b) => a * b, 1) * 4, 0);
  assert.equal(int8Bytes * 4, quantFloatBytes);
  assert.ok(toOnnx(q).proto.byteLength > 0);
});

test('one UNet call and VAE encode (tiny-sd15): int8 close to float32, and not equal to it; the VAE decoder stays float32', async () => {
  const fp = openCheckpoint(SD15), q = openCheckpoint(SD15, { precision: 'int8' });
  assert.equal(q.precision, 'int8');
  const call = { sample: noise([2, 4, 16, 16], 1), timestep: 500, encoderHiddenStates: noise([2, 77, 32], 2) };
  const e = relErr((await q.unet().run(call)).noisePred, (await fp.unet().run(call)).noisePred);
  const z = noise([1, 4, 16, 16], 3);
  const imgF = await fp.vae().decode(z);
  const d = relErr(await q.vae().decode(z), imgF);
  const image = { shape: imgF.shape, data: imgF.data.map((v) => Math.max(-1, Math.min(1, v))) };
  const enc = relErr((await q.vae().encode(image)).mean, (await fp.vae().encode(image)).mean);
  console.log(`int8 vs fp32 (tiny-sd15): UNet call ${e.toExponential(2)}, VAE encode ${enc.toExponential(2)} (relative L2); VAE decode ${d} (stays float32)`);
  assert.equal(d, 0, 'the VAE decoder stays float32');
  for (const [what, v] of [['UNet', e], ['VAE encode', enc]] as const) {
    assert.ok(v < 0.1, `${what}: relative error ${v} >= 0.1`);
    assert.ok(v > 1e-4, `${what}: relative error ${v}: int8 did not run`);
  }
});

test('20 DDIM steps + ControlNet (tiny-sd15): final latents of int8 within bounds of float32; the same Checkpoint switches back exactly', async () => {
  const ck = openCheckpoint(SD15);
  const net = ControlNet.open(modelDir('tiny-controlnet-sd15'));
  const image = await readImageRGB(goldenPath('tiny-controlnet-sd15', 'conditioning_image.png'));
  const latents = noise([1, 4, 16, 16], 4);
  const base = { prompt: 'a photograph of a cat', negativePrompt: 'blurry', steps: 20, guidance: 7.5, latents, latentsOnly: true, scheduler: 'ddim' };
  const fp = await textToImage(ck, base);
  ck.setPrecision('int8');
  const q = await textToImage(ck, base);
  const e20 = relErr(q.latents, fp.latents);
  const cnFp = await textToImage(openCheckpoint(SD15), { ...base, controls: [{ net, image, scale: 1 }] });
  const cnQ = await textToImage(ck, { ...base, controls: [{ net, image, scale: 1 }] });
  const eCn = relErr(cnQ.latents, cnFp.latents);
  console.log(`int8 vs fp32 (tiny-sd15, 20 steps): final latents ${e20.toExponential(2)}, with a ControlNet ${eCn.toExponential(2)}`);
  assert.ok(e20 < 0.08 && e20 > 1e-4, `20 steps: ${e20}`);
  assert.ok(eCn < 0.08 && eCn > 1e-4, `ControlNet: ${eCn}`);
  ck.setPrecision('fp32'); // the session cache is keyed on precision: float32 again, bit for bit
  assert.equal(relErr((await textToImage(ck, base)).latents, fp.latents), 0);
});

test('int8 on a device without quantized kernels: a one-line error, not a silent float32 run', () => {
  configureEngine({ device: 'webgpu' });
  try {
    assert.throws(() => usePrecision(new Graph('g'), 'int8'), /--precision int8 runs on --device cpu only/);
  } finally { configureEngine({ device: 'cpu' }); }
});

test('CLI: generate --precision int8 runs on the tiny model (after the command or before it); bad values and devices are one-line errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-int8-'));
  try {
    const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });
    const gen = (name: string, pre: string[], post: string[]) => run([...pre, 'generate', '--quiet', '--model', SD15, '--prompt', 'a cat', '--steps', '4', '--seed', '3', '--out', path.join(dir, `${name}.png`), '--save-latents', path.join(dir, `${name}.safetensors`), ...post]);
    const lat = (name: string): Tensor => readAllFloat32(path.join(dir, `${name}.safetensors`)).latents!;
    for (const [name, pre, post] of [['fp32', [], []], ['int8', [], ['--precision', 'int8']], ['int8-global', ['--precision', 'int8'], []]] as const) {
      const r = gen(name, [...pre], [...post]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(fs.existsSync(path.join(dir, `${name}.png`)));
    }
    const e = relErr(lat('int8'), lat('fp32'));
    assert.ok(e > 1e-4 && e < 0.08, `CLI int8 vs fp32: ${e}`);
    assert.equal(relErr(lat('int8-global'), lat('int8')), 0);
    for (const [args, msg] of [
      [['--device', 'webgpu', 'generate', '--model', SD15, '--prompt', 'a', '--precision', 'int8', '--out', path.join(dir, 'x.png')], /^error: --precision int8 runs on --device cpu only/m],
      [['generate', '--model', SD15, '--prompt', 'a', '--precision', 'int4', '--out', path.join(dir, 'x.png')], /^error: --precision must be one of fp32, int8, got "int4"/m],
    ] as const) {
      const r = run([...args]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'stack trace');
    }
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});
