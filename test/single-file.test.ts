import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { toOriginalLayout } from '../src/io/original-keymap.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';
import { readComponent } from './model-fixtures.js';


test('a single-file original-layout checkpoint generates exactly what its diffusers folder generates (tiny-sd15)', async () => {
  const dir = modelDir('tiny-sd15');
  const parts = { unet: readComponent(path.join(dir, 'unet')), vae: readComponent(path.join(dir, 'vae')), text_encoder: readComponent(path.join(dir, 'text_encoder')) };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-single-')), 'tiny-sd15.safetensors');
  writeSafetensors(file, toOriginalLayout(parts));
  // The tiny model's head counts break the 64-per-head rule of real checkpoints, so they are given.
  const single = openCheckpoint(file, { unetHeads: 8, textHeads: 4 });
  const folder = openCheckpoint(dir);
  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(11).randn([1, 4, 16, 16]) };
  const opts = { prompt: 'a red bicycle', negativePrompt: 'blurry', steps: 3, guidance: 7, width: 64, height: 64, latents };
  const a = await textToImage(single, opts);
  const b = await textToImage(folder, opts);
  assert.equal(maxAbsDiff(a.latents, b.latents), 0);
  assert.deepEqual(a.images[0]!.data, b.images[0]!.data);
  const pickle = file.replace('.safetensors', '.ckpt');
  fs.writeFileSync(pickle, 'PK');
  assert.throws(() => openCheckpoint(pickle), /not a readable torch zip checkpoint: .*truncated/);
});

test('--config with an explicit prediction type: the type wins over the folder\'s scheduler config (diffusers\' from_single_file)', () => {
  const single = path.join(modelDir('tiny-pickles'), 'tiny-sd15.safetensors');
  const folder = modelDir('tiny-sd15');
  assert.equal(openCheckpoint(single, { config: folder }).schedulerConfig().raw.prediction_type ?? 'epsilon', 'epsilon');
  const v = openCheckpoint(single, { config: folder, predictionType: 'v_prediction' }).schedulerConfig().raw;
  assert.equal(v.prediction_type, 'v_prediction');
  // The folder's other scheduler settings stay.
  const own = JSON.parse(fs.readFileSync(path.join(folder, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(v.beta_schedule, own.beta_schedule);
});
