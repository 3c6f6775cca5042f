/**
 * vary's reference row is dropped from the UNet batch after the last layer that reads its keys and values
 * when nothing reads its noise prediction (ReferenceLayout.unreadRows, UNetHooks.keepRows, models/batch-rows.ts):
 * the other rows must come out bit for bit as with the whole batch, the dropped row as zeros, and the work
 * after the drop must really shrink.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import type { UNet, UNetVariant } from '../src/components/unet.js';
import { Graph } from '../src/graph/ir.js';
import { readImageRGB } from '../src/io/image.js';
import { createMethod } from '../src/methods/index.js';
import { layoutKey, referenceAttentionHooks, weightFeeds, type ReferenceLayout } from '../src/methods/reference-attention.js';
import type { UNetHooks } from '../src/models/hooks.js';
import { selfAttentionPaths, unet2DConditionModel } from '../src/models/unet2d-condition.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { rowLayout, vary } from '../src/pipelines/vary.js';
import { maxAbsDiff, rows, type Tensor } from '../src/tensor.js';
import { goldenPath, modelDir } from './helpers.js';

const STEPS = 2;
const method = createMethod('indetail-ip', STEPS, { stratifiedSteps: 1 });
// InDetail-IP, 1 image, conflict-free guidance: rows [gen_uncond, ref_cond, gen_cond]
const { referenceOf } = rowLayout(true, false, 1);
const REF = 1;

function layoutOf(drop: boolean): ReferenceLayout {
  return { referenceOf, layer: method.layer, ...(drop ? { unreadRows: [REF] } : {}) };
}
const variantOf = (drop: boolean): UNetVariant => {
  const l = layoutOf(drop);
  return { key: `test-drop:${layoutKey(l, '')}`, hooks: (g) => referenceAttentionHooks(g, l) };
};

/** The UNet graph in IR only (no session), with `hooks`. */
function unetIR(unet: UNet, size: number, hooks: UNetHooks): Graph {
  const cfg = unet.config;
  const g = new Graph('t');
  const b = referenceOf.length;
  const addedCond = cfg.addition
    ? { textEmbeds: g.input('text_embeds', [b, cfg.addition.inputDim - 6 * cfg.addition.timeEmbedDim]), timeIds: g.input('time_ids', [b, 6]) }
    : undefined;
  g.output('noise_pred', unet2DConditionModel({
    sample: g.input('sample', [b, cfg.inChannels, size, size]), timestep: g.input('timestep', [b]),
    encoderHiddenStates: g.input('encoder_hidden_states', [b, 7, cfg.crossAttentionDim]), ...(addedCond ? { addedCond } : {}),
  }, unet.weights, cfg, hooks));
  return g;
}

/** Query rows x tokens over every fused attention of the graph (the attention work, up to the head size). */
function attentionWork(g: Graph): number {
  return g.nodes.filter((n) => n.op === 'MultiHeadAttention').reduce((s, n) => s + n.inputValues[0]!.dim(0) * n.inputValues[0]!.dim(1), 0);
}

for (const M of ['tiny-sd15', 'tiny-sdxl']) {
  test(`${M}: selfAttentionPaths lists the attn1 layers in build order; dropping the reference row after the last hooked one cuts its attention there`, () => {
    const unet = openCheckpoint(modelDir(M)).unet();
    const seen: { path: string; tokens: number }[] = [];
    unetIR(unet, 8, { attention: (call) => { if (call.kind === 'attn1') seen.push({ path: call.path, tokens: call.q.dim(1) }); return undefined; } });
    assert.deepEqual(selfAttentionPaths(unet.config), seen.map((s) => s.path));
    const full = unetIR(unet, 8, referenceAttentionHooks(new Graph('w'), layoutOf(false)));
    const dropped = unetIR(unet, 8, referenceAttentionHooks(new Graph('w'), layoutOf(true)));
    // after the last hooked layer's K/V: the reference row's attn1 and attn2 there (and in any later transformer) are gone
    const lastAt = seen.map((s) => method.layer(s.path, 0)).lastIndexOf(true);
    assert.match(seen[lastAt]!.path, /^up_blocks\./);
    const saved = seen.slice(lastAt).reduce((n, s) => n + 2 * s.tokens, 0);
    assert.equal(attentionWork(full) - attentionWork(dropped), saved, 'attention work saved');
  });

  test(`${M}: one UNet call with the reference row dropped: other rows bit for bit, the reference row zeros (Stratified and concatenation weights)`, async () => {
    const ck = openCheckpoint(modelDir(M));
    const unet = ck.unet();
    const cfg = unet.config;
    const b = referenceOf.length;
    const gen = new TorchGenerator(5);
    const sample: Tensor = { shape: [b, cfg.inChannels, 8, 8], data: gen.randn([b, cfg.inChannels, 8, 8]) };
    const ehs: Tensor = { shape: [b, 7, cfg.crossAttentionDim], data: gen.randn([b, 7, cfg.crossAttentionDim]) };
    const addedCond = cfg.addition ? {
      textEmbeds: { shape: [b, cfg.addition.inputDim - 6 * cfg.addition.timeEmbedDim], data: gen.randn([b, cfg.addition.inputDim - 6 * cfg.addition.timeEmbedDim]) },
      timeIds: { shape: [b, 6], data: Float32Array.from({ length: b * 6 }, (_, i) => [64, 64, 0, 0, 64, 64][i % 6]!) },
    } : undefined;
    for (const index of [0, STEPS - 1]) {
      const w = method.weights({ index, timestep: 500, steps: STEPS });
      const call = { sample, timestep: 500, encoderHiddenStates: ehs, ...(addedCond ? { addedCond } : {}), feeds: weightFeeds([w.cond]) };
      const whole = (await unet.run({ ...call, variant: variantOf(false) })).noisePred;
      const dropped = (await unet.run({ ...call, variant: variantOf(true) })).noisePred;
      assert.deepEqual([...dropped.shape], [...whole.shape]);
      for (const r of [0, 2]) assert.equal(maxAbsDiff(rows(dropped, r), rows(whole, r)), 0, `step ${index}: row ${r} differs`);
      assert.ok(rows(dropped, REF).data.every((v) => v === 0), `step ${index}: the dropped reference row is not zeros`);
      assert.ok(rows(whole, REF).data.some((v) => v !== 0));
    }
  });
}

test('vary (InDetail-IP, tiny-sd15): the same latents bit for bit whether the reference row is dropped or read (onUNetOutput keeps it)', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const reference = await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png'));
  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(3).randn([1, 4, 16, 16]) };
  const base = { reference, prompt: 'a cat', negativePrompt: 'blurry', steps: STEPS, guidance: 5, latents, method };
  const dropped = await vary(ck, base);
  const inversion = dropped.inversion;
  let refRow: Tensor | undefined;
  const kept = await vary(ck, { ...base, inversion, onUNetOutput: (i, layout, pred) => { if (i === 0) refRow = rows(pred, layout.findIndex((r) => r.kind === 'ref')); } });
  assert.equal(maxAbsDiff(dropped.latents, kept.latents), 0, 'latents differ');
  assert.ok(refRow && refRow.data.some((v) => v !== 0), 'with onUNetOutput the reference row is computed');
});
