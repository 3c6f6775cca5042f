import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { ControlNet } from '../src/components/controlnet.js';
import { parseLoraSpec } from '../src/adapters/lora/lora-set.js';
import { readImageRGB } from '../src/io/image.js';
import { createMethod } from '../src/methods/index.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary, type Row } from '../src/pipelines/vary.js';
import { maxAbsDiff, rows, type Tensor } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const IPA = 'tiny-ip-adapter';
const adapter = (name: string): string => path.join(modelDir(IPA), name);

test('IP-Adapter with a ControlNet: at --control-scale 0 the IP-Adapter pipeline golden; at IP scale 0 the ControlNet run bit for bit', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const gold = golden(IPA, 'pipeline_base');
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const net = ControlNet.open(modelDir('tiny-controlnet-sd15'));
  const control = await readImageRGB(goldenPath('tiny-controlnet-sd15', 'conditioning_image.png'));
  const base = { prompt: 'a portrait of a woman in a garden', negativePrompt: 'blurry, low quality', steps: 4, guidance: 7.5, width: 64, height: 64, latents: gold.latents_in!, latentsOnly: true };
  const off = await textToImage(ck, { ...base, controls: [{ net, image: control, scale: 0 }], ipAdapters: [{ adapter: adapter('ip-adapter_sd15.safetensors'), image, scale: 0.6 }] });
  const err = close(off.latents, gold.final_latents!, 1e-4, 'ControlNet at scale 0 + IP-Adapter');
  const cn = await textToImage(ck, { ...base, controls: [{ net, image: control, scale: 1 }] });
  const cnIp0 = await textToImage(ck, { ...base, controls: [{ net, image: control, scale: 1 }], ipAdapters: [{ adapter: adapter('ip-adapter_sd15.safetensors'), image, scale: 0 }] });
  assert.equal(maxAbsDiff(cnIp0.latents, cn.latents), 0);
  const both = await textToImage(ck, { ...base, controls: [{ net, image: control, scale: 1 }], ipAdapters: [{ adapter: adapter('ip-adapter_sd15.safetensors'), image, scale: 0.6 }] });
  assert.ok(maxAbsDiff(both.latents, cn.latents) > 1e-3 && maxAbsDiff(both.latents, off.latents) > 1e-3);
  console.log(`ip-adapter + controlnet(scale 0) vs golden: ${err.toExponential(1)}`);
});

test('vary (InDetail-IP) + IP-Adapter: image tokens on the generated rows only; reference rows unchanged bit for bit; IP scale 0 = plain vary', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const reference = await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png'));
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const latents = golden(IPA, 'pipeline_base').latents_in!;
  for (const guidanceMode of ['conflict-free', 'conflicting'] as const) {
    const outputs = (into: { layout: readonly Row[]; pred: Tensor }[]) => (_i: number, layout: readonly Row[], pred: Tensor): void => { into.push({ layout, pred: { shape: pred.shape, data: pred.data.slice() } }); };
    const run = async (ipAdapters: { adapter: string; image: typeof image; scale: number }[], into: { layout: readonly Row[]; pred: Tensor }[]) => vary(ck, {
      reference, method: createMethod('indetail-ip', 3, { guidanceMode, stratifiedSteps: 1 }), prompt: 'a cat', negativePrompt: 'blurry', steps: 3, guidance: 5,
      width: 64, height: 64, latents, ipAdapters, onUNetOutput: outputs(into),
    });
    const plainOut: { layout: readonly Row[]; pred: Tensor }[] = [], zeroOut: typeof plainOut = [], onOut: typeof plainOut = [];
    const plain = await run([], plainOut);
    const zero = await run([{ adapter: adapter('ip-adapter-plus_sd15.safetensors'), image, scale: 0 }], zeroOut);
    assert.equal(maxAbsDiff(zero.latents, plain.latents), 0, `${guidanceMode}: IP scale 0`);
    const on = await run([{ adapter: adapter('ip-adapter-plus_sd15.safetensors'), image, scale: 0.8 }, { adapter: adapter('ip-adapter_sd15.safetensors'), image, scale: 0.5 }], onOut);
    assert.ok(maxAbsDiff(on.latents, plain.latents) > 1e-3, `${guidanceMode}: the adapters change the generated images`);
    onOut.forEach(({ layout, pred }, i) => layout.forEach((r, j) => {
      const d = maxAbsDiff(rows(pred, j), rows(plainOut[i]!.pred, j));
      if (r.kind === 'ref') assert.equal(d, 0, `${guidanceMode} step ${i}: reference row ${j} (${r.branch}) must not see the image tokens`);
      else assert.ok(d > 0, `${guidanceMode} step ${i}: generated row ${j} (${r.branch}) sees the image tokens`);
    }));
  }
});

test('IP-Adapter with a LoRA: the LoRA at scale 0 + IP-Adapter is the IP-Adapter run bit for bit; at 0.7 it changes it', async () => {
  const gold = golden(IPA, 'pipeline_base');
  const image = await readImageRGB(goldenPath(IPA, 'ip_image_0.png'));
  const lora = path.join(modelDir('tiny-lora'), 'lora_kohya_sd15.safetensors');
  const base = { prompt: 'a portrait of a woman in a garden', negativePrompt: 'blurry, low quality', steps: 2, guidance: 7.5, width: 64, height: 64, latents: gold.latents_in!, latentsOnly: true, ipAdapters: [{ adapter: adapter('ip-adapter_sd15.safetensors'), image, scale: 0.6 }] };
  const ip = await textToImage(openCheckpoint(modelDir('tiny-sd15')), base);
  const off = await textToImage(openCheckpoint(modelDir('tiny-sd15'), { loras: [parseLoraSpec(`${lora}:0`)] }), base);
  assert.equal(maxAbsDiff(off.latents, ip.latents), 0);
  const on = await textToImage(openCheckpoint(modelDir('tiny-sd15'), { loras: [parseLoraSpec(`${lora}:0.7`)] }), base);
  assert.ok(maxAbsDiff(on.latents, ip.latents) > 1e-3);
});
