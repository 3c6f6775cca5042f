import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { readImageRGB } from '../src/io/image.js';
import { edit } from '../src/pipelines/edit.js';
import { initialDeltaBlock, trainAttribute } from '../src/pipelines/train-attribute.js';
import { invert } from '../src/pipelines/invert.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import { asyrpLossAndGrads, type DeltaParams } from '../src/methods/asyrp-training.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { goldenPath, modelDir } from './helpers.js';

test('train-attribute: the loss goes down, with and without a visual reference; the file loads in edit', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-attr-'));
  fs.copyFileSync(goldenPath('grads', 'asyrp_input.png'), path.join(dir, 'a.png'));
  fs.copyFileSync(goldenPath('tiny-sd15', 'inversion_input.png'), path.join(dir, 'b.png'));
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const clip = CLIPModel.open(modelDir('tiny-clip'));
  for (const visualReference of [undefined, 'generate'] as const) {
    const out = path.join(dir, `delta-${visualReference ?? 'text'}.safetensors`);
    const r = await trainAttribute(ck, { images: dir, source: 'a photo of a person', target: 'a photo of a smiling person', clip, out, iterations: 12, lr: 0.003, steps: 6, tEdit: 300, visualReference });
    // The training objective (text direction) over every image and editable timestep, before and after training.
    const invs = [await invert(ck, await readImageRGB(path.join(dir, 'a.png')), { prompt: 'a photo of a person', steps: 6 }), await invert(ck, await readImageRGB(path.join(dir, 'b.png')), { prompt: 'a photo of a person', steps: 6 })];
    const et = await clip.textFeatures(['a photo of a person', 'a photo of a smiling person']);
    const direction = { shape: [1, et.data.length / 2], data: et.data.slice(et.data.length / 2).map((v, i) => v - et.data[i]!) };
    const cfg = { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 };
    const tower = towerOfCLIPModel(clip);
    const objective = async (p: DeltaParams): Promise<number> => {
      let sum = 0, n = 0;
      for (const inv of invs) for (let k = 3; k <= 5; k++) { sum += (await asyrpLossAndGrads(ck, tower, cfg, p, { xt: inv.chain[k + 1]!, timestep: inv.timesteps[k]!, context: inv.promptEmbeds, direction })).loss; n++; }
      return sum / n;
    };
    const before = await objective(initialDeltaBlock(cfg, 0));
    const after = await objective(readAllFloat32(out) as unknown as DeltaParams);
    if (!visualReference) assert.ok(after < 0.95 * before, `text direction: objective ${before} -> ${after}`);
    console.log(`train-attribute (${visualReference ?? 'text'} direction): text-direction objective ${before.toFixed(4)} -> ${after.toFixed(4)}; per-iteration ${r.losses.map((l) => l.toFixed(3)).join(' ')}`);
    const e = await edit(ck, { image: await readImageRGB(path.join(dir, 'a.png')), attribute: out, steps: 6, tEdit: 300, tBoost: 0, strength: 1 });
    assert.equal(e.images.length, 1);
  }
  await assert.rejects(trainAttribute(ck, { images: fs.mkdtempSync(path.join(os.tmpdir(), 'vp-empty-')), source: 'a', target: 'b', clip, out: path.join(dir, 'x.safetensors') }), /holds no images/);
});

test('train-attribute pinned: the first iteration\'s loss is the Asyrp objective at the one editable timestep, and the saved weights are one hand-derived Adam step from the seeded init', async () => {
  // One image, 6 inversion steps (timesteps 1, 167, 333, 499, 665, 831): --t-edit 800 leaves only t = 831, the
  // last latent of the chain (chain[0] = x_0, chain[k] = the latent at timesteps[k-1]), so no draw is involved.
  // asyrpLossAndGrads itself is pinned to autograd in asyrp-training.test. Adam's first step from zero moments:
  // m^ = g, sqrt(v^) = |g|, so w1 = w0 - lr g / (|g| + 1e-8), elementwise.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-attr-pin-'));
  fs.copyFileSync(goldenPath('grads', 'asyrp_input.png'), path.join(dir, 'a.png'));
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const clip = CLIPModel.open(modelDir('tiny-clip'));
  const source = 'a photo of a person', target = 'a photo of a smiling person', lr = 0.01, seed = 3;
  const out = path.join(dir, 'delta.safetensors');
  const r = await trainAttribute(ck, { images: dir, source, target, clip, out, iterations: 1, lr, steps: 6, tEdit: 800, seed });
  assert.equal(r.images, 1);

  const inv = await invert(ck, await readImageRGB(path.join(dir, 'a.png')), { prompt: source, steps: 6 });
  assert.deepEqual([...inv.timesteps], [1, 167, 333, 499, 665, 831]);
  const et = await clip.textFeatures([source, target]);
  const d = et.data.length / 2;
  const direction = { shape: [1, d], data: Float32Array.from({ length: d }, (_, i) => et.data[d + i]! - et.data[i]!) };
  const cfg = { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 };
  const p0 = initialDeltaBlock(cfg, seed);
  const want = await asyrpLossAndGrads(ck, towerOfCLIPModel(clip), cfg, p0, { xt: inv.chain[6]!, timestep: 831, context: inv.promptEmbeds, direction });
  assert.ok(Math.abs(r.losses[0]! - want.loss) <= 1e-6 * Math.abs(want.loss), `first-iteration loss ${r.losses[0]}, objective ${want.loss}`);

  const saved = readAllFloat32(out);
  let worst = 0;
  for (const [n, w0] of Object.entries(p0)) {
    const g = want.grads[n as keyof DeltaParams].data;
    const w1 = saved[n]!;
    assert.deepEqual([...w1.shape], [...w0.shape], n);
    for (let i = 0; i < w0.data.length; i++) {
      const expected = w0.data[i]! - lr * g[i]! / (Math.abs(g[i]!) + 1e-8);
      worst = Math.max(worst, Math.abs(w1.data[i]! - expected));
    }
  }
  // 1e-6 = 1/10000 of one step (lr 0.01); a sign flip of a gradient would be 2e-2.
  assert.ok(worst <= 1e-6, `weights after one step: max abs err ${worst}`);
  console.log(`train-attribute first iteration: loss ${r.losses[0]} (objective ${want.loss}); weights vs hand-derived Adam step: ${worst.toExponential(1)}`);
});
