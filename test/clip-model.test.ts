import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIPModel, clipImageFeatures, clipModelConfig, clipSimilarity, clipTextFeatures } from '../src/components/clip-model.js';
import { FileFormatError } from '../src/errors.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { readImageRGB } from '../src/io/image.js';
import { poolIndex } from '../src/models/clip.js';
import { close, golden, goldenInts, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-clip';
const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'clip.json'), 'utf8')) as { prompts: string[]; images: { png: string }[]; logit_scale_exp: number };
const TOL = 1e-5;

async function images() {
  return Promise.all(meta.images.map((im) => readImageRGB(goldenPath(M, im.png))));
}

test('CLIPModel parity with transformers (tiny-clip): features, logits, cosine, CLIP score', async () => {
  const model = CLIPModel.open(modelDir(M));
  const gold = golden(M, 'clip');
  const errs: Record<string, number> = {};

  // Inputs: tokenizer and image processor match what the goldens were made from.
  const ids = goldenInts(M, 'clip', 'input_ids');
  const encodings = meta.prompts.map((p) => model.tokenizer.encode(p));
  assert.deepEqual(encodings.flatMap((e) => e.input_ids), ids.data, 'input_ids');
  assert.deepEqual(encodings.flatMap((e) => e.attention_mask), goldenInts(M, 'clip', 'attention_mask').data, 'attention_mask');
  const imgs = await images();
  errs.pixel_values = close(model.processor.preprocess(imgs), gold.pixel_values!, TOL, 'pixel_values');

  const text = await model.encodeText(meta.prompts);
  errs.text_embeds = close(text.textEmbeds, gold.text_embeds!, TOL, 'text_embeds');
  errs.text_pooler_output = close(text.poolerOutput, gold.text_pooler_output!, TOL, 'text_pooler_output');
  assert.deepEqual(text.truncated, []);
  const image = await model.encodePixels(model.processor.preprocess(imgs));
  errs.image_embeds = close(image.imageEmbeds, gold.image_embeds!, TOL, 'image_embeds');
  errs.image_pooler_output = close(image.poolerOutput, gold.image_pooler_output!, TOL, 'image_pooler_output');
  // The public one-liners give the same tensors.
  assert.deepEqual(await model.textFeatures(meta.prompts), text.textEmbeds);
  assert.deepEqual(await model.imageFeatures(imgs), image.imageEmbeds);
  assert.deepEqual(await model.imageFeaturesFromPixels(gold.pixel_values!), (await model.encodePixels(gold.pixel_values!)).imageEmbeds);

  const scale = model.logitScale();
  assert.ok(Math.abs(scale - meta.logit_scale_exp) < 1e-5, `logit scale ${scale}`);
  assert.ok(Math.abs(scale - Math.exp(gold.logit_scale!.data[0]!)) < 1e-5);

  const sim = await model.similarity(imgs, meta.prompts);
  errs.cosine = close(sim.cosine, gold.cosine!, TOL, 'cosine');
  errs.logits_per_image = close(sim.logitsPerImage, gold.logits_per_image!, TOL, 'logits_per_image');
  errs.logits_per_text = close(sim.logitsPerText, gold.logits_per_text!, TOL, 'logits_per_text');
  errs.clip_score = close(sim.clipScore, gold.clip_score!, 1e-4, 'clip_score');
  // The similarity math alone, on the golden features.
  const fromGold = clipSimilarity(gold.image_embeds!, gold.text_embeds!, Math.exp(gold.logit_scale!.data[0]!));
  errs['cosine (golden features)'] = close(fromGold.cosine, gold.cosine!, 1e-6, 'cosine from golden features');
  errs['clip_score (golden features)'] = close(fromGold.clipScore, gold.clip_score!, 1e-4, 'clip_score from golden features');
  errs['logits_per_image (golden features)'] = close(fromGold.logitsPerImage, gold.logits_per_image!, 1e-5, 'logits from golden features');
  // Every stored cosine of tiny-clip is negative, so every stored CLIP score is the clamp's 0. Check the
  // unclamped branch too: with the text features negated, the score is 100 * |cos|.
  assert.ok(gold.clip_score!.data.every((v) => v === 0) && gold.cosine!.data.every((v) => v < 0));
  const negated = { shape: gold.text_embeds!.shape, data: gold.text_embeds!.data.map((v) => -v) };
  const flipped = clipSimilarity(image.imageEmbeds, negated, scale).clipScore;
  errs['clip_score (negated text, vs -100 * golden cosine)'] = close(flipped, { shape: gold.cosine!.shape, data: gold.cosine!.data.map((v) => -100 * v) }, 1e-4, 'unclamped clip_score');

  // One pair.
  const s = await model.clipScore(imgs[1]!, meta.prompts[2]!);
  assert.ok(Math.abs(s - gold.clip_score!.data[1 * 3 + 2]!) < 1e-4, `clipScore ${s}`);

  console.log(`tiny-clip CLIPModel max abs err: ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')}`);
});

test('CLIPModel graph builders: constant EOS gather and differentiable image features match the goldens', async () => {
  const model = CLIPModel.open(modelDir(M));
  const gold = golden(M, 'clip');
  const ids = goldenInts(M, 'clip', 'input_ids');
  const len = ids.shape[1]!;
  const positions = [0, 1, 2].map((i) => poolIndex(ids.data.slice(i * len, (i + 1) * len), model.config.text.eosTokenId));
  const g = new Graph();
  const input = g.input('input_ids', ids.shape, 'int64');
  const px = g.input('pixel_values', gold.pixel_values!.shape);
  g.output('text_embeds', clipTextFeatures(input, positions, model.weights, model.config));
  g.output('image_embeds', clipImageFeatures(px, model.weights, model.config));
  // The graph uses no ArgMax: the EOS rows are constant Gather indices.
  assert.ok(!g.nodes.some((n) => n.op === 'ArgMax'));
  const r = await runOnce(g, { input_ids: { int64: ids.data, shape: ids.shape }, pixel_values: gold.pixel_values! });
  const e1 = close(r.text_embeds!, gold.text_embeds!, TOL, 'text_embeds (builder)');
  const e2 = close(r.image_embeds!, gold.image_embeds!, TOL, 'image_embeds (builder)');
  console.log(`tiny-clip builders max abs err: text_embeds ${e1.toExponential(1)}, image_embeds ${e2.toExponential(1)}`);
});

function tempModel(edit: (cfg: Record<string, unknown>) => void): string {
  const src = modelDir(M);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-clip-'));
  for (const f of fs.readdirSync(src)) if (f !== 'config.json') fs.symlinkSync(path.join(src, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(cfg);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

test('CLIPModel config: missing text_config falls back to transformers defaults and is reported against the weights', () => {
  const dir = tempModel((c) => { delete c.text_config; });
  try {
    const cfg = clipModelConfig(Config.read(path.join(dir, 'config.json')));
    assert.equal(cfg.text.hiddenSize, 512);
    assert.equal(cfg.text.numHiddenLayers, 12);
    assert.equal(cfg.text.numAttentionHeads, 8);
    assert.equal(cfg.text.intermediateSize, 2048);
    assert.equal(cfg.text.vocabSize, 49408);
    assert.equal(cfg.text.eosTokenId, 49407);
    assert.equal(cfg.text.hiddenAct, 'quick_gelu');
    assert.equal(cfg.projectionDim, 32);
    assert.equal(cfg.vision.hiddenSize, 32);
    assert.deepEqual(cfg.defaulted, ['text_config']);
    assert.throws(() => CLIPModel.open(dir), (e: unknown) => {
      assert.ok(e instanceof FileFormatError, String(e));
      assert.equal(e.key, 'text_config');
      assert.match(e.message, /text_config.*missing.*defaults/);
      assert.match(e.message, /\[49408, 32\]/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLIPModel config: malformed nested configs are FileFormatErrors naming the key', () => {
  const cases: [(c: Record<string, unknown>) => void, string, RegExp][] = [
    [(c) => { c.text_config = 'oops'; }, 'text_config', /expected an object/],
    [(c) => { c.vision_config = [1, 2]; }, 'vision_config', /expected an object/],
    [(c) => { (c.vision_config as Record<string, unknown>).hidden_size = 'wide'; }, 'hidden_size', /vision_config.*expected a number/],
    [(c) => { (c.text_config as Record<string, unknown>).hidden_act = 'swish'; }, 'hidden_act', /text_config.*expected one of/],
    [(c) => { c.projection_dim = 64; }, 'projection_dim', /text_projection\.weight.*\[64, 32\].*\[32, 32\]/],
    [(c) => { (c.vision_config as Record<string, unknown>).num_hidden_layers = 3; }, 'vision_config', /num_hidden_layers 3/],
  ];
  for (const [edit, key, message] of cases) {
    const dir = tempModel(edit);
    try {
      assert.throws(() => CLIPModel.open(dir), (e: unknown) => {
        assert.ok(e instanceof FileFormatError, String(e));
        assert.equal(e.key, key, e.message);
        assert.match(e.message, message);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});
