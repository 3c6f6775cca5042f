/**
 * The Asyrp attribute-network training loop (src/pipelines/train-attribute.ts) on a pixel-space stand-in checkpoint
 * whose UNet call is a known function (so the inversions cost nothing) but whose weights are tiny-ddpm's (the
 * objective differentiates through them), with tiny-clip's image tower and stand-in text features. The loop is
 * written out here (direction, per-image timestep picks from the seeded generator, the default init by hand, Adam on
 * the objective) and must give the same losses, weights, metadata and progress. A few seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '../src/errors.js';
import { writePNG, type RGBImage } from '../src/io/image.js';
import { readAllFloat32, SafetensorsFile } from '../src/io/safetensors.js';
import { asyrpLossAndGrads, type DeltaParams } from '../src/methods/asyrp-training.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { invert } from '../src/pipelines/invert.js';
import { initialDeltaBlock, trainAttribute } from '../src/pipelines/train-attribute.js';
import { Adam } from '../src/training/optimizers.js';
import type { Tensor } from '../src/tensor.js';
import { ck, clip, imageFolder, initByHand, TEXT_DIM, textFeat } from './train-attribute-stand-ins.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-tattr-'));




test('train-attribute loop: per image a seeded editable timestep, Adam on the objective, mean loss per iteration; saved weights and metadata', async () => {
  const dir = await imageFolder(tmp, 'loop', [['b.png', 2], ['a.PNG', 1], ['skip.txt', 0]]);
  const out = path.join(tmp, 'attr.safetensors');
  const seen: [number, number][] = [], events: string[] = [], texts: string[][] = [];
  const o = { images: dir, source: 'a face', target: 'a smiling face', out, iterations: 2, lr: 0.01, steps: 3, tEdit: 334, seed: 4 };
  const r = await trainAttribute(ck([], true), { ...o, clip: clip(texts, true), onLoss: (i, l) => seen.push([i, l]), onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}${e.detail ? ` ${e.detail}` : ''}`) });
  assert.equal(r.images, 2);
  assert.deepEqual(texts, [['a face', 'a smiling face']]);

  // by hand: direction E_T(target) - E_T(source); images in name order a.PNG, b.png (any case); inversions at 1, 334, 667
  const c = ck([], true);
  const direction: Tensor = { shape: [1, TEXT_DIM], data: Float32Array.from(textFeat('a smiling face'), (v, i) => v - textFeat('a face')[i]!) };
  const { readImageRGB } = await import('../src/io/image.js');
  const chains = [];
  for (const f of ['a.PNG', 'b.png']) chains.push(await invert(c, await readImageRGB(path.join(dir, f)), { prompt: '', steps: 3 }));
  assert.deepEqual(chains[0]!.timesteps, [1, 334, 667]);
  const cfg = { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 };
  const init = initByHand(64, 128, 4);
  const params = Object.fromEntries(Object.entries(initialDeltaBlock(cfg, 0)).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(init[n]!) }])) as DeltaParams;
  const adam = new Adam({ lr: 0.01 });
  const rng = new NativeGaussian(4 + 7);
  const tower = towerOfCLIPModel(clip([], true));
  const losses: number[] = [], picks: number[] = [];
  for (let it = 0; it < 2; it++) {
    let sum = 0;
    for (const inv of chains) {
      const k = 2 + Math.floor((rng.nextUint32() / 2 ** 32) * 2); // editable: 334 (chain[2]) and 667 (chain[3])
      picks.push(k);
      const g = await asyrpLossAndGrads(c, tower, cfg, params, { xt: inv.chain[k]!, timestep: inv.timesteps[k - 1]!, context: undefined, direction });
      adam.step(params, g.grads);
      sum += g.loss;
    }
    losses.push(sum / 2);
  }
  assert.deepEqual(r.losses, losses);
  assert.deepEqual(seen, [[1, losses[0]], [2, losses[1]]]);
  const saved = readAllFloat32(out);
  assert.deepEqual(Object.keys(saved).sort(), Object.keys(params).sort());
  for (const [n, t] of Object.entries(params)) assert.deepEqual(Array.from(saved[n]!.data), Array.from(t.data), n);
  const f = SafetensorsFile.open(out);
  assert.deepEqual({ ...f.metadata }, { format: 'visprompt-asyrp-deltablock', model: 'tattr-stand-in', source: 'a face', target: 'a smiling face', t_edit: '334', channels: '64', temb_channels: '128' });
  f.close();
  assert.deepEqual(events, ['invert 0/2', 'invert 1/2', 'invert 2/2', 'train 0/2', `train 1/2 loss ${losses[0]!.toFixed(4)}`, `train 2/2 loss ${losses[1]!.toFixed(4)}`]);
  // the same source and target: a zero direction, a NaN loss, refused
  await assert.rejects(trainAttribute(ck([], true), { ...o, iterations: 1, target: 'a face', clip: clip([], true) }), (e: unknown) => e instanceof InputError && e.message === 'the loss became NaN; lower --lr');
  console.log(`train-attribute-loop: picks ${picks.join(' ')}, losses ${losses.map((l) => l.toFixed(5)).join(' ')}`);
});

test('train-attribute with a visual reference (an image file, or generated from the target): the fused direction normalize(d_text) + normalize(E_I(ref) - mean E_I(images))', async () => {
  const dir = await imageFolder(tmp, 'visual', [['a.png', 5], ['b.png', 6]], 12); // 12 x 12: not a multiple of 8
  const refFile = path.join(tmp, 'ref.png');
  const refImage = { width: 12, height: 12, data: Uint8Array.from({ length: 432 }, (_, i) => (i * 13 + 200) % 256) } as RGBImage;
  await writePNG(refFile, refImage);
  const c = ck([], true), m = clip([], true);
  const tower = towerOfCLIPModel(m);
  const { readImageRGB } = await import('../src/io/image.js');
  const { compile } = await import('../src/graph/session.js');
  const { Graph } = await import('../src/graph/ir.js');
  const { clipPixels } = await import('../src/methods/clip-guidance.js');
  const { textToImage } = await import('../src/pipelines/text-to-image.js');
  /** CLIP image features of a 12 x 12 image in [-1, 1] through the tower (float64 from here on). */
  const feats = async (im: RGBImage): Promise<number[]> => {
    const x: Tensor = { shape: [1, 3, 12, 12], data: Float32Array.from({ length: 432 }, (_, j) => im.data[(j % 144) * 3 + Math.floor(j / 144)]! / 127.5 - 1) };
    const s = await compile(`test-clip-feats:${tower.id}`, () => { const g = new Graph(); g.output('f', tower.features(clipPixels(g.input('x', [1, 3, 12, 12]), tower))); return g; });
    return Array.from((await s.run({ x })).f!.data);
  };
  const unit = (v: number[]) => { const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0)); return v.map((x) => x / n); };
  const images = [await readImageRGB(path.join(dir, 'a.png')), await readImageRGB(path.join(dir, 'b.png'))];
  const fi = [await feats(images[0]!), await feats(images[1]!)];
  const dText = unit(textFeat('a smiling face').map((v, i) => v - textFeat('a face')[i]!));
  const chains: Awaited<ReturnType<typeof invert>>[] = [];
  for (const im of images) chains.push(await invert(c, im, { prompt: '', steps: 3 }));
  const cfg = { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 };
  const firstLoss = async (ref: RGBImage): Promise<number> => {
    const fr = await feats(ref);
    const dv = unit(fr.map((v, i) => v - (fi[0]![i]! + fi[1]![i]!) / 2));
    const direction: Tensor = { shape: [1, TEXT_DIM], data: Float32Array.from(dText, (v, i) => v + dv[i]!) };
    const params = initialDeltaBlock(cfg, 0);
    const adam = new Adam({ lr: 0.01 });
    const rng = new NativeGaussian(7);
    let sum = 0;
    for (const inv of chains) {
      const k = 2 + Math.floor((rng.nextUint32() / 2 ** 32) * 2);
      const g = await asyrpLossAndGrads(c, tower, cfg, params, { xt: inv.chain[k]!, timestep: inv.timesteps[k - 1]!, direction });
      adam.step(params, g.grads);
      sum += g.loss;
    }
    return sum / 2;
  };
  const o = { images: dir, source: 'a face', target: 'a smiling face', clip: m, iterations: 1, lr: 0.01, steps: 3, tEdit: 334 };
  const rf = await trainAttribute(c, { ...o, out: path.join(tmp, 'vis-file.safetensors'), visualReference: refFile });
  const wantFile = await firstLoss(refImage);
  assert.ok(Math.abs(rf.losses[0]! - wantFile) < 1e-5, `file reference: ${rf.losses[0]} vs ${wantFile}`);
  // 'generate': DDIM from the target text at the images' size, guidance 7.5, noise from the seed (default 0)
  const gen = (await textToImage(c, { scheduler: 'ddim', prompt: 'a smiling face', steps: 3, guidance: 7.5, width: 12, height: 12, noise: new NativeGaussian(0) })).images[0]!;
  const rg = await trainAttribute(c, { ...o, out: path.join(tmp, 'vis-gen.safetensors'), visualReference: 'generate' });
  const wantGen = await firstLoss(gen);
  assert.ok(Math.abs(rg.losses[0]! - wantGen) < 1e-5, `generated reference: ${rg.losses[0]} vs ${wantGen}`);
  assert.ok(Math.abs(wantGen - wantFile) > 1e-4 && Math.abs(rf.losses[0]! - rg.losses[0]!) > 1e-4, 'the two references give different directions');
});
