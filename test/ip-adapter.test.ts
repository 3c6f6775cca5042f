import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { Graph, type Value } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { readImageRGB } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { crossAttentionOrder, ipAdapterFeeds, ipAdapterVariant } from '../src/adapters/ip-adapter/decoupled-attention.js';
import { IPAdapter, readAdapterTensors } from '../src/adapters/ip-adapter/ip-adapter-file.js';
import { ipAdapterPlusImageProjection, projectImageEmbeds } from '../src/adapters/ip-adapter/image-projection.js';
import { ipAdapterTokens } from '../src/adapters/ip-adapter/prepare.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, rows, type Tensor } from '../src/tensor.js';
import { close, FIXTURES, golden, goldenPath, modelDir } from './helpers.js';

const IPA = 'tiny-ip-adapter';
const adapterFile = (name: string): string => path.join(modelDir(IPA), name);
const BASE = 'ip-adapter_sd15.safetensors', PLUS = 'ip-adapter-plus_sd15.safetensors';
/** [2, 1, ...] (a num_images axis of 1) -> [2, ...] */
const dropImagesAxis = (t: Tensor): Tensor => ({ shape: [t.shape[0]!, ...t.shape.slice(2)], data: t.data });

test('IP-Adapter files: official layout read and renamed (base, plus), attn2 numbering', () => {
  const base = IPAdapter.open(adapterFile(BASE));
  assert.deepEqual(base.projection, { kind: 'base', imageEmbedDim: 32, crossAttentionDim: 32, numTokens: 4 });
  assert.equal(base.layers, 11);
  const plus = IPAdapter.open(adapterFile(PLUS));
  assert.deepEqual(plus.projection, { kind: 'plus', imageEmbedDim: 32, crossAttentionDim: 32, numTokens: 16, hiddenDim: 48, heads: 1, dimHead: 64, depth: 4, ffInner: 192 });
  const unet = openCheckpoint(modelDir('tiny-sd15')).unet();
  const meta = JSON.parse(fs.readFileSync(goldenPath(IPA, 'unet.json'), 'utf8')) as { notes: { layout: { key: number; processor: string }[] } };
  assert.deepEqual(crossAttentionOrder(unet).map((p, k) => ({ key: 2 * k + 1, processor: `${p}.processor` })), meta.notes.layout.map((l) => ({ key: l.key, processor: l.processor })));
});

test('IP-Adapter image embeds (base: image_embeds / zeros; plus: hidden_states[-2] / encoder on zero pixels) and projected tokens', async () => {
  const ge = golden(IPA, 'image_encoder'), gp = golden(IPA, 'image_proj');
  const encoder = openCheckpoint(modelDir('tiny-sd15')).imageEncoder();
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const errs: string[] = [];
  for (const [kind, file] of [['base', BASE], ['plus', PLUS]] as const) {
    const adapter = IPAdapter.open(adapterFile(file));
    // the projection alone on the golden's inputs
    const tokens = await projectImageEmbeds(adapter, dropImagesAxis(gp[`${kind}.image_embeds_input`]!));
    errs.push(`${kind} proj ${close(tokens, dropImagesAxis(gp[`${kind}.image_tokens`]!), 2e-5, `${kind}.image_tokens`).toExponential(1)}`);
    // the whole chain from the PNG
    const t = await ipAdapterTokens(adapter, encoder, image);
    const gold = dropImagesAxis(gp[`${kind}.image_tokens`]!);
    errs.push(`${kind} uncond ${close(t.uncond, rows(gold, 0), 5e-5, `${kind} uncond tokens`).toExponential(1)}`);
    errs.push(`${kind} cond ${close(t.cond, rows(gold, 1), 5e-5, `${kind} cond tokens`).toExponential(1)}`);
  }
  // the encoder outputs the two kinds read
  const pix = encoder.processor.preprocess([image]);
  assert.equal(maxAbsDiff(pix, ge['image_0.pixel_values']!), 0);
  console.log(`ip-adapter tokens: ${errs.join(', ')}`);
});

test('IP-Adapter plus Resampler intermediates (proj_in, every layer, proj_out)', async () => {
  const gp = golden(IPA, 'image_proj');
  const adapter = IPAdapter.open(adapterFile(PLUS));
  if (adapter.projection.kind !== 'plus') throw new Error('plus');
  const g = new Graph();
  const x = g.input('x', dropImagesAxis(gp['plus.image_embeds_input']!).shape);
  const taps = new Map<string, Value>();
  g.output('tokens', ipAdapterPlusImageProjection(x, adapter.imageProj, adapter.projection, (n, v) => taps.set(n, v)));
  for (const [n, v] of taps) g.output(n, v);
  const out = await runOnce(g, { x: dropImagesAxis(gp['plus.image_embeds_input']!) });
  for (const n of taps.keys()) close(out[n]!, gp[`plus.${n}`]!, 2e-5, n);
});

test('UNet with IP-Adapter tokens at scales 1 and 0.5 (base, plus): noise and attn2 input/output; scale 0 is the plain UNet bit for bit', async () => {
  const gu = golden(IPA, 'unet'), gp = golden(IPA, 'image_proj');
  const unet = openCheckpoint(modelDir('tiny-sd15')).unet();
  const ts = [641, 241];
  const taps = ['down_blocks.0.attentions.0.transformer_blocks.0.attn2', 'mid_block.attentions.0.transformer_blocks.0.attn2'].flatMap((p) => [`${p}.input`, `${p}.output`]);
  const plain = await unet.run({ sample: gu.latents!, timestep: ts, encoderHiddenStates: gu.encoder_hidden_states! });
  const errs: string[] = [`no_ip ${close(plain.noisePred, gu['no_ip.noise_pred']!, 2e-5, 'no_ip').toExponential(1)}`];
  for (const [kind, file] of [['base', BASE], ['plus', PLUS]] as const) {
    const adapter = IPAdapter.open(adapterFile(file));
    const tokens = dropImagesAxis(gp[`${kind}.image_tokens`]!);
    const variant = { ...ipAdapterVariant(unet, [{ adapter, numTokens: tokens.shape[1]! }])!, outputs: taps };
    for (const scale of [1, 0.5, 0]) {
      const feeds = ipAdapterFeeds([{ scale, uncond: rows(tokens, 0), cond: rows(tokens, 1) }], ['uncond', 'cond']);
      const r = await unet.run({ sample: gu.latents!, timestep: ts, encoderHiddenStates: gu.encoder_hidden_states!, variant, feeds });
      if (scale === 0) {
        assert.equal(maxAbsDiff(r.noisePred, plain.noisePred), 0, `${kind}: scale 0 must equal the plain UNet bit for bit`);
        continue;
      }
      errs.push(`${kind} s${scale} ${close(r.noisePred, gu[`${kind}.s${scale}.noise_pred`]!, 2e-5, `${kind} s${scale}`).toExponential(1)}`);
      if (scale === 1) for (const t of taps) close(r.extra[t]!, gu[`${kind}.s1.${t}`]!, 2e-5, `${kind} ${t}`);
    }
  }
  console.log(`ip-adapter unet: ${errs.join(', ')}`);
});

interface PipelineMeta { prompt: string; negative_prompt: string; num_inference_steps: number; guidance_scale: number; width: number; height: number; adapters: string[]; ip_adapter_scale: number | number[] }

test('StableDiffusionPipeline + IP-Adapter parity (base, plus, base + plus at once; 4 DDIM steps, CFG 7.5)', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const images = [await readImageRGB(goldenPath(IPA, 'ip_image_0.png')), await readImageRGB(goldenPath(IPA, 'ip_image_1.png'))];
  const errs: string[] = [];
  for (const name of ['pipeline_base', 'pipeline_plus', 'pipeline_multi']) {
    const gold = golden(IPA, name);
    const meta = JSON.parse(fs.readFileSync(goldenPath(IPA, `${name}.json`), 'utf8')) as PipelineMeta;
    const scales = Array.isArray(meta.ip_adapter_scale) ? meta.ip_adapter_scale : [meta.ip_adapter_scale];
    const steps: Tensor[] = [];
    const r = await textToImage(ck, {
      prompt: meta.prompt, negativePrompt: meta.negative_prompt, steps: meta.num_inference_steps, guidance: meta.guidance_scale,
      width: meta.width, height: meta.height, latents: gold.latents_in!, latentsOnly: true,
      ipAdapters: meta.adapters.map((a, j) => ({ adapter: adapterFile(a), image: images[j]!, scale: scales[j]! })),
      onStepEnd: (_i, _t, l) => steps.push(l),
    });
    steps.forEach((l, i) => close(l, gold[`step_${i}.latents_after`]!, 1e-4, `${name} step ${i}`));
    errs.push(`${name} ${close(r.latents, gold.final_latents!, 1e-4, `${name} final latents`).toExponential(1)}`);
  }
  console.log(`ip-adapter pipelines: ${errs.join(', ')}`);
});

test('IP-Adapter at scale 0 equals plain generation bit for bit; a nonzero scale changes it', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const gold = golden(IPA, 'pipeline_base');
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const base = { prompt: 'a portrait of a woman in a garden', negativePrompt: 'blurry, low quality', steps: 2, guidance: 7.5, width: 64, height: 64, latents: gold.latents_in!, latentsOnly: true };
  const plain = await textToImage(ck, base);
  const zero = await textToImage(ck, { ...base, ipAdapters: [{ adapter: adapterFile(BASE), image, scale: 0 }, { adapter: adapterFile(PLUS), image, scale: 0 }] });
  assert.equal(maxAbsDiff(zero.latents, plain.latents), 0);
  const on = await textToImage(ck, { ...base, ipAdapters: [{ adapter: adapterFile(PLUS), image, scale: 0.5 }] });
  assert.ok(maxAbsDiff(on.latents, plain.latents) > 1e-3);
});

test('the official pickled .bin adapter loads (weights-only) to exactly the tensors of its safetensors twin; an F32 re-save projects the same', async () => {
  const bin = IPAdapter.open(path.join(FIXTURES, 'models', 'tiny-pickles', 'ip-adapter_sd15.bin'));
  const st = IPAdapter.open(adapterFile(BASE));
  assert.deepEqual(bin.projection, st.projection);
  const a = readAdapterTensors(path.join(FIXTURES, 'models', 'tiny-pickles', 'ip-adapter_sd15.bin')), b = readAdapterTensors(adapterFile(BASE));
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of b) {
    assert.deepEqual(a.get(k)!.shape, t.shape, k);
    assert.equal(maxAbsDiff(a.get(k)!, t), 0, k);
  }
  const embeds = dropImagesAxis(golden(IPA, 'image_proj')['base.image_embeds_input']!);
  assert.equal(maxAbsDiff(await projectImageEmbeds(bin, embeds), await projectImageEmbeds(st, embeds)), 0);
  // F32 files are read by ONNX Runtime from disk (by location); the Resampler's to_kv halves by rows
  const f32 = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-ipa-')), 'plus-f32.safetensors');
  writeSafetensors(f32, Object.fromEntries(readAdapterTensors(adapterFile(PLUS))));
  const hidden = dropImagesAxis(golden(IPA, 'image_proj')['plus.image_embeds_input']!);
  assert.equal(maxAbsDiff(await projectImageEmbeds(IPAdapter.open(f32), hidden), await projectImageEmbeds(IPAdapter.open(adapterFile(PLUS)), hidden)), 0);
});

test('IP-Adapter with --num-images 2 (tokens repeated per image, as num_images_per_prompt) and without guidance', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const gold = golden(IPA, 'pipeline_plus');
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const two = { shape: [2, ...gold.latents_in!.shape.slice(1)], data: new Float32Array([...gold.latents_in!.data, ...gold.latents_in!.data]) };
  const base = { prompt: 'a portrait of a woman in a garden', negativePrompt: 'blurry, low quality', steps: 4, width: 64, height: 64, latentsOnly: true, ipAdapters: [{ adapter: adapterFile(PLUS), image, scale: 0.6 }] };
  const r = await textToImage(ck, { ...base, guidance: 7.5, numImages: 2, latents: two });
  for (const i of [0, 1]) close(rows(r.latents, i), gold.final_latents!, 1e-4, `image ${i}`);
  const noCfg = await textToImage(ck, { ...base, guidance: 1, numImages: 2, latents: two });
  const plain = await textToImage(ck, { ...base, guidance: 1, numImages: 2, latents: two, ipAdapters: [] });
  assert.ok(maxAbsDiff(noCfg.latents, plain.latents) > 1e-3);
  assert.equal(maxAbsDiff(rows(noCfg.latents, 0), rows(noCfg.latents, 1)), 0);
});
