import { test } from 'node:test';
import path from 'node:path';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { clipTextConfig, clipTextModel, clipVisionConfig, clipVisionModel } from '../src/models/clip.js';
import { close, golden, goldenInts, MODELS, modelDir } from './helpers.js';

for (const m of MODELS) {
  test(`CLIPTextModel parity with transformers (${m}): every hidden state, last, penultimate`, async () => {
    const dir = path.join(modelDir(m), 'text_encoder');
    const cfg = clipTextConfig(Config.read(path.join(dir, 'config.json')));
    const vb = new WeightsView(openComponentWeights(dir));
    const gold = golden(m, 'text_encoder');
    const ids = goldenInts(m, 'text_encoder', 'input_ids');
    const g = new Graph();
    const x = g.input('input_ids', ids.shape, 'int64');
    const out = clipTextModel(x, vb, cfg);
    g.output('last_hidden_state', out.lastHiddenState);
    out.hiddenStates.forEach((h, i) => g.output(`hidden_states.${i}`, h));
    g.output('penultimate_final_layer_norm', out.finalLayerNorm(out.hiddenStates[out.hiddenStates.length - 2]!));
    const r = await runOnce(g, { input_ids: { int64: ids.data, shape: ids.shape } });
    const errs: string[] = [];
    for (const k of Object.keys(r)) errs.push(`${k} ${close(r[k]!, gold[k]!, 2e-5, k).toExponential(1)}`);
    console.log(`${m} text encoder max abs err: ${errs.join(', ')}`);
  });

  test(`CLIPVisionModelWithProjection parity with transformers (${m}) from golden pixel_values`, async () => {
    const dir = path.join(modelDir(m), 'image_encoder');
    const cfg = clipVisionConfig(Config.read(path.join(dir, 'config.json')));
    const vb = new WeightsView(openComponentWeights(dir));
    const gold = golden(m, 'image_encoder');
    const g = new Graph();
    const px = g.input('pixel_values', gold.pixel_values!.shape);
    const out = clipVisionModel(px, vb, cfg, vb.pp('visual_projection'));
    g.output('image_embeds', out.imageEmbeds);
    g.output('last_hidden_state', out.lastHiddenState);
    g.output('pooled_output', out.pooledOutput);
    out.hiddenStates.forEach((h, i) => g.output(`hidden_states.${i}`, h));
    const r = await runOnce(g, { pixel_values: gold.pixel_values! });
    const errs: string[] = [];
    for (const k of Object.keys(r)) errs.push(`${k} ${close(r[k]!, gold[k]!, 2e-5, k).toExponential(1)}`);
    console.log(`${m} image encoder max abs err: ${errs.join(', ')}`);
  });
}
