/** Models under --models: discovery with families, names that cannot leave the folder, the LRU of loaded models. */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ModelCache, discoverModels, resolveInside } from '../src/server/models.js';
import { modelDir } from './helpers.js';
import { tmpDir } from './server-helpers.js';

test('model discovery: families of diffusers folders, pixel DDPMs, SDXL; names stay inside the folder', () => {
  const root = tmpDir('disc');
  for (const m of ['tiny-sd15', 'tiny-sd21', 'tiny-sdxl', 'tiny-ddpm']) fs.symlinkSync(modelDir(m), path.join(root, m));
  fs.mkdirSync(path.join(root, 'nested', 'deeper'), { recursive: true });
  fs.symlinkSync(modelDir('tiny-controlnet-sd15'), path.join(root, 'nested', 'deeper', 'cn'));
  fs.writeFileSync(path.join(root, 'notes.txt'), 'not a model');
  fs.writeFileSync(path.join(root, 'bad.safetensors'), 'not safetensors');
  const found = Object.fromEntries(discoverModels(root).map((m) => [m.name, `${m.kind}/${m.family}`]));
  assert.deepEqual(found, { 'tiny-sd15': 'pipeline/sd1', 'tiny-sd21': 'pipeline/sd2', 'tiny-sdxl': 'pipeline/sdxl', 'tiny-ddpm': 'pipeline/ddpm', 'nested/deeper/cn': 'controlnet/controlnet' });
  for (const bad of ['../x', '/etc/passwd', 'a/../../b', 'C:\\x', 'x\0y']) assert.throws(() => resolveInside(root, bad, 'model'), { message: /^model: / }, bad);
  assert.equal(resolveInside(root, 'tiny-sd15', 'model'), path.join(root, 'tiny-sd15'));
});

test('loaded models are kept in least-recently-used order within the memory budget', () => {
  const root = tmpDir('lru');
  for (const m of ['tiny-sd15', 'tiny-sd21']) fs.symlinkSync(modelDir(m), path.join(root, m));
  const size = discoverModels(root).find((m) => m.name === 'tiny-sd15')!.bytes;
  const cache = new ModelCache(root, size * 1.5); // room for one
  const a = cache.checkpoint('tiny-sd15');
  assert.equal(cache.checkpoint('tiny-sd15'), a, 'the second job on a model gets the loaded one');
  cache.checkpoint('tiny-sd21');
  assert.deepEqual(cache.loaded().map((k) => path.basename(k)), ['tiny-sd21'], 'the least recently used model was evicted');
  assert.notEqual(cache.checkpoint('tiny-sd15'), a, 'an evicted model is opened again');
  const roomy = new ModelCache(root, size * 10);
  roomy.checkpoint('tiny-sd15');
  roomy.checkpoint('tiny-sd21');
  assert.equal(roomy.loaded().length, 2);
});
