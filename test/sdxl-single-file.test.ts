import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { FileFormatError } from '../src/errors.js';
import { toOriginalLayout, type DiffusersComponentsXL } from '../src/io/original-keymap.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';
import { readComponent } from './model-fixtures.js';

const M = 'tiny-sdxl';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-sdxl-single-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));


/** tiny-sdxl re-saved in Stability's single-file layout (conditioner.embedders.0/1, label_emb, fused OpenCLIP q/k/v). */
function singleFile(): { file: string; parts: Required<DiffusersComponentsXL> } {
  const parts = {
    unet: readComponent(path.join(modelDir(M), 'unet')),
    vae: readComponent(path.join(modelDir(M), 'vae')),
    text_encoder: readComponent(path.join(modelDir(M), 'text_encoder')),
    text_encoder_2: readComponent(path.join(modelDir(M), 'text_encoder_2')),
  };
  const orig = toOriginalLayout(parts);
  const file = path.join(tmp, 'tiny-sdxl.safetensors');
  if (!fs.existsSync(file)) writeSafetensors(file, orig);
  return { file, parts };
}

test('SDXL single-file layout: key names, fused q/k/v, transposed text_projection; every tensor reads back as diffusers has it', () => {
  const { file, parts } = singleFile();
  const ck = openCheckpoint(file, { unetHeads: [2, 4, 4], textHeads: 4, imageSize: 64 });
  const keys = Object.keys(toOriginalLayout(parts));
  assert.ok(keys.includes('model.diffusion_model.label_emb.0.0.weight'));
  assert.ok(keys.includes('conditioner.embedders.0.transformer.text_model.final_layer_norm.weight'));
  assert.ok(keys.includes('conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight'));
  assert.ok(keys.includes('conditioner.embedders.1.model.text_projection'));
  for (const [name, comp] of [['unet', ck.unet().weights], ['text_encoder', ck.textEncoder().weights], ['text_encoder_2', ck.textEncoder2().weights]] as const) {
    const want = parts[name];
    for (const [k, t] of Object.entries(want)) {
      if (k.endsWith('position_ids')) continue;
      assert.equal(maxAbsDiff(comp.get(k), t), 0, `${name} ${k}`);
    }
  }
  const u = ck.unet().config;
  assert.deepEqual(u.addition, { timeEmbedDim: 8, inputDim: 80 });
  assert.deepEqual(u.transformerLayersPerBlock, [1, 1, 2]);
  assert.equal(ck.vae().config.scalingFactor, 0.13025);
  assert.equal(ck.schedulerConfig().raw._class_name, 'EulerDiscreteScheduler');
  assert.equal(ck.tokenizer2().padTokenId, 0);
});

test('SDXL single file: text encoding, UNet and text-to-image (DDIM) equal the diffusers folder golden', async () => {
  const { file } = singleFile();
  const ck = openCheckpoint(file, { unetHeads: [2, 4, 4], textHeads: 4, imageSize: 64 });
  const ep = golden(M, 'encode_prompt');
  const emb = await ck.conditioner().encode([null, 'a photograph of an astronaut riding a horse']);
  close(emb.rows(1).embeds, ep['cfg_no_negative.prompt_embeds']!, 2e-5, 'prompt embeds');
  close(emb.rows(1).pooled!, ep['cfg_no_negative.pooled_prompt_embeds']!, 2e-5, 'pooled');
  const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'pipeline_t2i_ddim.json'), 'utf8')) as { prompt: string; negative_prompt: string };
  const g = golden(M, 'pipeline_t2i_ddim');
  const r = await textToImage(ck, { prompt: meta.prompt, negativePrompt: meta.negative_prompt, steps: 5, guidance: 5, latents: g.latents_in, scheduler: 'ddim', latentsOnly: true });
  const err = close(r.latents, g.final_latents!, 1e-4, 'final latents');
  console.log(`tiny-sdxl single file t2i ddim: ${err.toExponential(1)} (default size ${r.latents.shape.slice(2).map((d) => d * 4).join('x')})`);
});

test('a single file that is neither SD 1.x/2.x nor SDXL: one line naming the file and what was found', () => {
  const file = path.join(tmp, 'flux-like.safetensors');
  writeSafetensors(file, { 'double_blocks.0.img_attn.qkv.weight': { shape: [2, 2], data: new Float32Array(4) } });
  assert.throws(() => openCheckpoint(file), (e: Error) => e instanceof FileFormatError && e.message.includes(file) && /not a Stable Diffusion 1\.x\/2\.x\/XL single-file checkpoint.*Found 1 tensors \(e\.g\. double_blocks/.test(e.message) && !e.message.includes('\n'));
});
