import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { runOnce } from '../src/graph/session.js';
import { tensor } from '../src/tensor.js';

test('graph: matmul + external weight + softmax + reshape/transpose round-trip through ONNX Runtime', async () => {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  const wData = new Float32Array(3 * 300).map((_, i) => (i % 7) / 7 - 0.5); // > 1 KiB: external data
  const w = g.weight('w', tensor([3, 300], wData));
  const y = op.matmul(x, w);
  g.output('y', y);
  g.output('p', op.softmax(y, -1));
  g.output('t', op.transpose(op.reshape(y, [2, 3, 100]), [0, 2, 1]));
  const xv = tensor([2, 3], [1, 2, 3, -1, 0.5, 2]);
  const out = await runOnce(g, { x: xv });
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 300; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += xv.data[i * 3 + k]! * wData[k * 300 + j]!;
      assert.ok(Math.abs(out.y!.data[i * 300 + j]! - s) < 1e-5);
    }
  }
  let sum = 0;
  for (let j = 0; j < 300; j++) sum += out.p!.data[j]!;
  assert.ok(Math.abs(sum - 1) < 1e-5);
  assert.deepEqual(out.t!.shape, [2, 100, 3]);
  assert.equal(out.t!.data[1 * 3 + 2], out.y!.data[2 * 100 + 1]);
});

test('graph cache: a second session loads ORT\'s optimized graph from disk and computes the same', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { configureEngine, compile, releaseSessions } = await import('../src/graph/session.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-gcache-'));
  const build = (): Graph => {
    const g = new Graph();
    const x = g.input('x', [1, 2, 8, 8]);
    const w = g.weight('w', tensor([3, 2, 3, 3], new Float32Array(54).map((_, i) => Math.sin(i))));
    g.output('y', op.softmax(op.conv2d(x, w, null, { padding: 1 }), 1));
    return g;
  };
  const x = tensor([1, 2, 8, 8], new Float32Array(128).map((_, i) => Math.cos(i)));
  try {
    configureEngine({ graphCache: dir });
    const first = await (await compile('gc-test-a', build)).run({ x });
    assert.ok(fs.readdirSync(dir).some((f) => f.endsWith('.onnx.ready')), 'the optimized graph was written');
    // built in a private folder and renamed into place: nothing half-written is left where another process looks
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.building-')), []);
    await releaseSessions('gc-test');
    const second = await (await compile('gc-test-b', build)).run({ x });
    assert.deepEqual([...second.y!.data], [...first.y!.data]);
  } finally {
    configureEngine({ graphCache: undefined });
  }
});

test('F32 weights stored as-is are read by ONNX Runtime from the file: JavaScript never reads them', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { writeSafetensors, SafetensorsFile } = await import('../src/io/safetensors.js');
  const { SafetensorsSource, WeightsView } = await import('../src/io/weights.js');
  const { param } = await import('../src/graph/nn.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-filew-'));
  const file = path.join(dir, 'w.safetensors');
  const w = new Float32Array(64 * 300).map((_, i) => Math.sin(i));
  writeSafetensors(file, { small: { shape: [3], data: new Float32Array([1, 2, 3]) }, w: { shape: [64, 300], data: w } });
  const source = new SafetensorsSource(file, [SafetensorsFile.open(file)]);
  let reads = 0;
  const read = source.read.bind(source);
  source.read = (k) => { reads++; return read(k); };
  const vb = new WeightsView(source);
  const g = new Graph();
  const x = g.input('x', [2, 64]);
  const inline = op.constFloat(g, [300], new Float32Array(300).fill(0.5), 'bias'); // a non-file constant beside file weights
  g.output('y', op.add(op.matmul(x, param(g, vb, 'w', [64, 300])), inline));
  const xv = tensor([2, 64], new Float32Array(128).map((_, i) => (i % 5) - 2));
  const y = (await runOnce(g, { x: xv })).y!;
  assert.equal(reads, 0, 'no JavaScript read of the weight');
  let s = 0.5;
  for (let k = 0; k < 64; k++) s += xv.data[64 + k]! * w[k * 300 + 7]!;
  assert.ok(Math.abs(y.data[300 + 7]! - s) < 1e-4);
});

test('with a cache folder, half-precision checkpoints get float32 mirrors read by ONNX Runtime; results are unchanged', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { configureEngine, releaseSessions } = await import('../src/graph/session.js');
  const { openCheckpoint } = await import('../src/components/checkpoint.js');
  const { textToImage } = await import('../src/pipelines/text-to-image.js');
  const { modelDir } = await import('./helpers.js');
  const latents = tensor([1, 4, 16, 16], new Float32Array(1024).map((_, i) => Math.sin(i * 0.37)));
  const run = async () => (await textToImage(openCheckpoint(modelDir('tiny-sd15')), { prompt: 'a red fox', steps: 2, guidance: 6, latents, width: 64, height: 64 })).latents;
  const plain = await run();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-mirror-'));
  try {
    configureEngine({ graphCache: dir });
    const mirrored = await run();
    const mirrors = fs.readdirSync(path.join(dir, 'f32-weights')).filter((f) => f.endsWith('.f32.safetensors'));
    assert.equal(mirrors.length, 3, `unet, vae and text encoder mirrored: ${mirrors}`);
    assert.deepEqual([...mirrored.data], [...plain.data]);
    // the optimized graphs and their weights were renamed into place; a fresh session loads them from there
    assert.ok(fs.readdirSync(dir).some((f) => f.endsWith('.weights')), 'optimized weights written beside the graphs');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.building-')), []);
    await releaseSessions();
    assert.deepEqual([...(await run()).data], [...plain.data]);
  } finally {
    configureEngine({ graphCache: undefined });
  }
});
