/**
 * A single-file LCM-distilled SDXL: the UNet's guidance projection (diffusers time_embedding.cond_proj,
 * time_cond_proj_dim) is found in the file under either spelling converters write, configured, and runs as
 * the equivalent diffusers folder does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { toOriginalLayout, UNET_PREFIX } from '../src/io/original-keymap.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';
import { readComponent } from './model-fixtures.js';

const M = 'tiny-sdxl';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sdxl-lcm-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));


/** tiny-sdxl's UNet with a random guidance projection [timestep channels 32, 16]: the LCM-distilled shape. */
const COND = 16;
const condProj: Tensor = { shape: [32, COND], data: new NativeGaussian(3).randn([32, COND]).map((v) => v * 0.05) };
const parts = {
  unet: { ...readComponent(path.join(modelDir(M), 'unet')), 'time_embedding.cond_proj.weight': condProj },
  vae: readComponent(path.join(modelDir(M), 'vae')),
  text_encoder: readComponent(path.join(modelDir(M), 'text_encoder')),
  text_encoder_2: readComponent(path.join(modelDir(M), 'text_encoder_2')),
};

/** The same model as a diffusers folder (what diffusers' LCM SDXL repos hold). */
function diffusersFolder(): string {
  const dir = path.join(tmp, 'folder');
  fs.cpSync(modelDir(M), dir, { recursive: true });
  const cfgFile = path.join(dir, 'unet', 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as object, time_cond_proj_dim: COND }));
  writeSafetensors(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), parts.unet);
  return dir;
}

const open = (file: string) => openCheckpoint(file, { unetHeads: [2, 4, 4], textHeads: 4, imageSize: 64 });

test('single-file LCM SDXL: time_embedding.cond_proj / time_embed.0.cond_proj map to the guidance projection; LCM sampling equals the diffusers folder', async () => {
  const orig = toOriginalLayout(parts);
  const key = `${UNET_PREFIX}time_embedding.cond_proj.weight`;
  assert.ok(orig[key], 'converters keep the diffusers name under model.diffusion_model.');
  const fileA = path.join(tmp, 'lcm-sdxl.safetensors');
  writeSafetensors(fileA, orig);
  const { [key]: moved, ...rest } = orig;
  const fileB = path.join(tmp, 'lcm-sdxl-time-embed.safetensors');
  writeSafetensors(fileB, { ...rest, [`${UNET_PREFIX}time_embed.0.cond_proj.weight`]: moved! });

  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(4).randn([1, 4, 16, 16]) };
  const run = (ck: ReturnType<typeof openCheckpoint>) => textToImage(ck, { scheduler: 'lcm', prompt: 'a cat', steps: 2, guidance: 6, latents, noise: new TorchGenerator(8), width: 64, height: 64, latentsOnly: true });
  const folder = await run(openCheckpoint(diffusersFolder()));
  for (const file of [fileA, fileB]) {
    const ck = open(file);
    assert.equal(ck.unet().config.timeCondProjDim, COND, `${path.basename(file)}: time_cond_proj_dim from the weight's shape`);
    assert.equal(maxAbsDiff(ck.unet().weights.get('time_embedding.cond_proj.weight'), condProj), 0, 'the weight reads back');
    const r = await run(ck);
    const d = maxAbsDiff(r.latents, folder.latents);
    assert.ok(d <= 1e-5, `${path.basename(file)}: LCM latents differ from the diffusers folder's by ${d}`);
  }
  // Without the projection the file is a plain SDXL (no guidance embedding): a different result.
  const { [key]: _drop, ...plainKeys } = orig;
  const plainFile = path.join(tmp, 'plain-sdxl.safetensors');
  writeSafetensors(plainFile, plainKeys);
  const plain = open(plainFile);
  assert.equal(plain.unet().config.timeCondProjDim, null);
  assert.ok(maxAbsDiff((await run(plain)).latents, folder.latents) > 1e-4, 'the guidance projection contributes');
});
