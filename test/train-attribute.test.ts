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
