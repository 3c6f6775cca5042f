import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { crossAttentionOrder, ipAdapterFeeds, ipAdapterVariant } from '../src/adapters/ip-adapter/decoupled-attention.js';
import { IPAdapter } from '../src/adapters/ip-adapter/ip-adapter-file.js';
import { ipAdapterTokens, openImageEncoder } from '../src/adapters/ip-adapter/prepare.js';
import { readImageRGB } from '../src/io/image.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { concatRows, maxAbsDiff, rows, type Tensor } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const IPA = 'tiny-ip-adapter';
const dropImagesAxis = (t: Tensor): Tensor => ({ shape: [t.shape[0]!, ...t.shape.slice(2)], data: t.data });
const meta = JSON.parse(fs.readFileSync(goldenPath(IPA, 'pipeline_sdxl.json'), 'utf8')) as { notes: { layout: { key: number; processor: string }[] }; timesteps: number[] };

test('SDXL IP-Adapter: attn2 numbering (down, up, mid), tokens through the SD 1.5 image encoder, UNet steps with the adapter', async () => {
  const sdxl = openCheckpoint(modelDir('tiny-sdxl'));
  const unet = sdxl.unet();
  assert.deepEqual(crossAttentionOrder(unet).map((p, k) => ({ key: 2 * k + 1, processor: `${p}.processor` })), meta.notes.layout.map((l) => ({ key: l.key, processor: l.processor })));
  const gold = golden(IPA, 'pipeline_sdxl');
  const adapter = IPAdapter.open(path.join(modelDir(IPA), 'ip-adapter_sdxl.safetensors'));
  // tiny-sdxl has no feature_extractor: the encoder folder on its own gets CLIPImageProcessor(size = crop = image_size)
  const encoder = openImageEncoder(path.join(modelDir('tiny-sd15'), 'image_encoder'), sdxl);
  const t = await ipAdapterTokens(adapter, encoder, await readImageRGB(goldenPath(IPA, 'ip_image_sdxl.png')));
  const tokErr = close(concatRows([t.uncond, t.cond]), dropImagesAxis(gold.ip_image_tokens!), 2e-5, 'SDXL image tokens');
  const variant = ipAdapterVariant(unet, [{ adapter, numTokens: 4 }])!;
  const ehs = concatRows([gold.negative_prompt_embeds!, gold.prompt_embeds!]);
  const addedCond = { textEmbeds: concatRows([gold.negative_pooled_prompt_embeds!, gold.pooled_prompt_embeds!]), timeIds: concatRows([gold.add_time_ids!, gold.add_time_ids!]) };
  const errs: string[] = [];
  for (let i = 0; i < meta.timesteps.length; i++) {
    const call = { sample: gold[`step_${i}.unet_input`]!, timestep: meta.timesteps[i]!, encoderHiddenStates: ehs, addedCond };
    const r = await unet.run({ ...call, variant, feeds: ipAdapterFeeds([{ scale: 0.6, ...t }], ['uncond', 'cond']) });
    errs.push(close(r.noisePred, gold[`step_${i}.unet_output`]!, 5e-5, `step ${i} UNet output`).toExponential(1));
    if (i === 0) {
      const plain = await unet.run(call);
      const zero = await unet.run({ ...call, variant, feeds: ipAdapterFeeds([{ scale: 0, ...t }], ['uncond', 'cond']) });
      assert.equal(maxAbsDiff(zero.noisePred, plain.noisePred), 0, 'scale 0 = the plain SDXL UNet');
      assert.ok(maxAbsDiff(rows(r.noisePred, 1), rows(plain.noisePred, 1)) > 1e-4);
    }
  }
  console.log(`ip-adapter sdxl: tokens ${tokErr.toExponential(1)}, UNet steps ${errs.join(' ')}`);
});

test('StableDiffusionXLPipeline + IP-Adapter parity (Euler, 4 steps, CFG 5; image encoder folder given separately)', async () => {
  const gold = golden(IPA, 'pipeline_sdxl');
  const steps: Tensor[] = [];
  const r = await textToImage(openCheckpoint(modelDir('tiny-sdxl')), {
    prompt: 'a bronze statue of a lion in a park', negativePrompt: 'blurry, low quality', steps: 4, guidance: 5, width: 64, height: 64, scheduler: 'euler',
    latents: gold.latents_in!, latentsOnly: true, imageEncoder: path.join(modelDir('tiny-sd15'), 'image_encoder'),
    ipAdapters: [{ adapter: path.join(modelDir(IPA), 'ip-adapter_sdxl.safetensors'), image: await readImageRGB(goldenPath(IPA, 'ip_image_sdxl.png')), scale: 0.6 }],
    onStepEnd: (_i, _t, l) => steps.push(l),
  });
  steps.forEach((l, i) => close(l, gold[`step_${i}.latents_after`]!, 1e-4, `step ${i}`));
  console.log(`ip-adapter sdxl pipeline: final latents ${close(r.latents, gold.final_latents!, 1e-4, 'final latents').toExponential(1)}`);
});

test('--image-encoder takes a whole CLIPModel folder too (its vision tower + visual_projection): image_embeds = CLIP image features', async () => {
  const gold = golden('tiny-clip', 'clip');
  const encoder = openImageEncoder(modelDir('tiny-clip'));
  const pixels = gold.pixel_values!;
  const r = await encoder.encodePixels(pixels);
  close(r.imageEmbeds, gold.image_embeds!, 2e-5, 'CLIPModel image features as image_embeds');
});
