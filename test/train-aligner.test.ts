import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { writePNG } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { trainAligner } from '../src/pipelines/train-aligner.js';
import { maxAbsDiff } from '../src/tensor.js';
import { FIXTURES, modelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-ta-'));
const COLORS: [string, number[]][] = [['red', [220, 30, 30]], ['green', [30, 200, 40]], ['blue', [30, 40, 220]], ['yellow', [230, 220, 40]], ['black', [10, 10, 10]], ['white', [245, 245, 245]], ['purple', [140, 40, 160]], ['orange', [240, 140, 20]]];

async function dataset(): Promise<string> {
  const lines: string[] = [];
  for (const [i, [name, rgb]] of COLORS.entries()) {
    const w = 40 + 4 * i, h = 48;
    const data = new Uint8Array(w * h * 3);
    for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) data[3 * p + c] = Math.max(0, Math.min(255, rgb[c]! + ((p * 7 + c * 13) % 23) - 11));
    await writePNG(path.join(tmp, `${name}.png`), { width: w, height: h, data });
    lines.push(JSON.stringify({ image: `${name}.png`, caption: `a ${name} square` }));
  }
  lines.push(JSON.stringify({ image: 'missing.png', caption: 'a lost image' }));
  lines.push(JSON.stringify({ image: 'red.png', caption: Array(90).fill('red').join(' ') }));
  const file = path.join(tmp, 'pairs.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

test('train-aligner: loss goes down on a small data set; missing images and long captions are counted; resume continues exactly', async () => {
  const data = await dataset();
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const warnings: string[] = [];
  const out = path.join(tmp, 'a.safetensors');
  const r = await trainAligner(ck, { data, out, steps: 30, batchSize: 9, lr: 3e-3, seed: 1, onWarning: (m) => warnings.push(m) });
  assert.equal(r.pairs, 9);
  assert.equal(r.missingImages, 1);
  assert.equal(r.truncatedCaptions, 1);
  assert.ok(warnings.some((w) => /1 pair\(s\) skipped: image file missing/.test(w)));
  assert.ok(warnings.some((w) => /1 caption\(s\) longer than 77 tokens were truncated/.test(w)));
  const first = r.losses.slice(0, 3).reduce((a, b) => a + b) / 3, last = r.losses.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(last < 0.8 * first, `loss ${first} -> ${last}`);
  console.log(`train-aligner: loss ${first.toFixed(3)} -> ${last.toFixed(3)} over 30 steps`);

  // 12 steps straight vs 5 steps, then resume to 12: the same weights.
  const straight = path.join(tmp, 'straight.safetensors'), resumed = path.join(tmp, 'resumed.safetensors');
  await trainAligner(ck, { data, out: straight, steps: 12, batchSize: 4, lr: 1e-3, seed: 2 });
  await trainAligner(ck, { data, out: resumed, steps: 5, batchSize: 4, lr: 1e-3, seed: 2 });
  const again = await trainAligner(ck, { data, out: resumed, steps: 12, batchSize: 4, lr: 1e-3, seed: 2, resume: true });
  assert.equal(again.steps, 7);
  const a = readAllFloat32(straight), b = readAllFloat32(resumed);
  for (const n of ['norm.weight', 'fc1.weight', 'fc2.bias']) assert.ok(maxAbsDiff(a[n]!, b[n]!) < 1e-6, `${n} differs after resume`);
});

test('train-aligner CLI: an aligner for another model size is a clear error; --init and --resume exclude each other', async () => {
  const data = await dataset();
  const bad = path.join(tmp, 'bad.safetensors');
  const t = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)) });
  writeSafetensors(bad, { 'norm.weight': t([768]), 'norm.bias': t([768]), 'fc1.weight': t([1024, 768]), 'fc1.bias': t([1024]), 'fc2.weight': t([768, 1024]), 'fc2.bias': t([768]) });
  const bin = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
  let r = spawnSync(process.execPath, [bin, 'train-aligner', '--model', modelDir('tiny-sd15'), '--data', data, '--init', bad, '--steps', '1', '--out', path.join(tmp, 'o.safetensors'), '--quiet'], { encoding: 'utf8' });
  assert.match(r.stderr, /error: .*bad\.safetensors \[fc1\.weight\]: aligner maps 768-dim image tokens to 768-dim text embeddings, but this model has 32-dim image tokens and 32-dim text embeddings/);
  r = spawnSync(process.execPath, [bin, 'train-aligner', '--model', modelDir('tiny-sd15'), '--data', data, '--init', bad, '--resume', '--out', path.join(tmp, 'o.safetensors')], { encoding: 'utf8' });
  assert.match(r.stderr, /error: give --init or --resume, not both/);
});

test('train-aligner pinned: on the golden batch from the golden init, every step\'s loss and the weights after steps 1 and 3 equal torch (autograd + torch.optim.Adam)', async () => {
  // goldens/grads/vcf_aligner: 3 images + captions, one batch of 3 (InfoNCE over all), Adam lr 1e-3, 3 steps on the
  // same batch. The pipeline computes the image / text tokens itself from the PNGs and captions, so this pins the
  // whole path: data file -> encoders -> embedding cache -> batches in file order -> loss -> Adam -> saved file.
  const G = path.join(FIXTURES, 'goldens', 'grads');
  const meta = JSON.parse(fs.readFileSync(path.join(G, 'vcf_aligner.json'), 'utf8')) as { captions: string[]; images: { png: string }[]; adam_losses: number[] };
  const g = readAllFloat32(path.join(G, 'vcf_aligner.safetensors'));
  const dir = fs.mkdtempSync(path.join(tmp, 'golden-'));
  const data = path.join(dir, 'pairs.jsonl');
  fs.writeFileSync(data, meta.images.map((im, i) => JSON.stringify({ image: path.join(G, im.png), caption: meta.captions[i] })).join('\n') + '\n');
  const init = path.join(dir, 'init.safetensors');
  const NAMES = ['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'];
  writeSafetensors(init, Object.fromEntries(NAMES.map((n) => [n, g[`aligner.${n}`]!])));
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const errs: string[] = [];
  for (const steps of [1, 3]) {
    const out = path.join(dir, `a${steps}.safetensors`);
    const r = await trainAligner(ck, { data, out, init, steps, batchSize: 3, lr: 1e-3, shuffle: false });
    r.losses.forEach((l, i) => {
      const want = meta.adam_losses[i]!;
      assert.ok(Math.abs(l - want) <= 1e-5 * Math.abs(want), `step ${i + 1} loss ${l}, torch ${want}`);
    });
    const w = readAllFloat32(out);
    for (const n of NAMES) {
      const e = maxAbsDiff(w[n]!, g[`adam.step${steps}.${n}`]!);
      errs.push(`step ${steps} ${n} ${e.toExponential(1)}`);
      // Adam moves each weight by ~lr per step whatever the gradient's size: 1e-6 is 1/1000 of one step.
      assert.ok(e <= 1e-6, `after step ${steps}, ${n}: max abs err ${e}`);
    }
  }
  console.log(`train-aligner vs torch: losses ${meta.adam_losses.join(', ')}; weights ${errs.join(', ')}`);
});
