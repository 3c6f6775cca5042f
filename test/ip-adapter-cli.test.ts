/** IP-Adapter on the command line: the contract command and one clear line for every mistake. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readAdapterTensors } from '../src/adapters/ip-adapter/ip-adapter-file.js';
import { readPNGText } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { close, FIXTURES, golden, goldenPath, modelDir } from './helpers.js';

const BIN = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-ipa-'));
const MODEL = modelDir('tiny-sd15');
const IPA = 'tiny-ip-adapter';
const BASE = path.join(modelDir(IPA), 'ip-adapter_sd15.safetensors');
const IMG = goldenPath(IPA, 'ip_image_0.png');
const common = ['generate', '--model', MODEL, '--prompt', 'a', '--steps', '1', '--seed', '1', '--quiet', '--out', path.join(tmp, 'x.png')];

function run(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stderr: r.stderr };
}

function expectUserError(args: string[], pattern: RegExp): void {
  const r = run(args);
  assert.notEqual(r.code, 0, `exit code for ${args.join(' ')}`);
  assert.match(r.stderr, pattern);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line:\n${r.stderr}`);
}

test('generate --ip-adapter --ip-image --ip-scale with --latents / --save-latents equals the diffusers pipeline; the PNG records the adapters', async () => {
  const gold = golden(IPA, 'pipeline_base');
  const meta = JSON.parse(fs.readFileSync(goldenPath(IPA, 'pipeline_base.json'), 'utf8')) as { prompt: string; negative_prompt: string; ip_adapter_scale: number };
  const lat = path.join(tmp, 'lat.safetensors'), out = path.join(tmp, 'out.safetensors');
  writeSafetensors(lat, { latents: gold.latents_in! });
  const r = run(['generate', '--model', MODEL, '--prompt', meta.prompt, '--negative-prompt', meta.negative_prompt, '--steps', '4', '--guidance', '7.5', '--width', '64', '--height', '64',
    '--latents', lat, '--ip-adapter', BASE, '--ip-image', IMG, '--ip-scale', String(meta.ip_adapter_scale), '--save-latents', out, '--out', path.join(tmp, 'img.png'), '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  close(readAllFloat32(out).latents!, gold.final_latents!, 1e-4, 'CLI final latents');
  const params = JSON.parse((await readPNGText(path.join(tmp, 'img.png'))).parameters!) as { ip_adapters: { file: string; scale: number }[] };
  assert.deepEqual(params.ip_adapters.map((a) => [a.file, a.scale]), [[BASE, meta.ip_adapter_scale]]);
});

test('IP-Adapter mistakes are one-line errors', () => {
  // an adapter for another base model: token width vs cross_attention_dim, both numbers named
  expectUserError([...common, '--ip-adapter', path.join(modelDir(IPA), 'ip-adapter_sdxl.safetensors'), '--ip-image', IMG], /another base model: it makes 64-wide image tokens but this model's cross-attention is 32 wide/);
  // an adapter for another image encoder: image_embeds width
  const narrow = readAdapterTensors(BASE);
  const w = narrow.get('image_proj.proj.weight')!;
  narrow.set('image_proj.proj.weight', { shape: [w.shape[0]!, 16], data: w.data.slice(0, w.shape[0]! * 16) });
  const narrowFile = path.join(tmp, 'narrow.safetensors');
  writeSafetensors(narrowFile, Object.fromEntries(narrow));
  expectUserError([...common, '--ip-adapter', narrowFile, '--ip-image', IMG], /another image encoder: it reads 16-wide image_embeds but the image encoder .* gives 32-wide ones/);
  // counts that do not pair up
  expectUserError([...common, '--ip-adapter', BASE], /1 --ip-adapter but 0 --ip-image/);
  expectUserError([...common, '--ip-adapter', BASE, '--ip-image', IMG, '--ip-image', IMG], /1 --ip-adapter but 2 --ip-image/);
  expectUserError([...common, '--ip-adapter', BASE, '--ip-image', IMG, '--ip-scale', '0.5', '--ip-scale', '1'], /2 --ip-scale for 1 --ip-adapter/);
  expectUserError([...common, '--ip-adapter', BASE, '--ip-image', IMG, '--ip-scale', 'x'], /--ip-scale must be a number/);
  // not an adapter
  expectUserError([...common, '--ip-adapter', path.join(MODEL, 'unet', 'diffusion_pytorch_model.safetensors'), '--ip-image', IMG], /not an IP-Adapter tensor/);
  expectUserError([...common, '--ip-adapter', path.join(tmp, 'missing.safetensors'), '--ip-image', IMG], /--ip-adapter file not found/);
  // a model without image_encoder/: say to pass --image-encoder
  const bare = path.join(tmp, 'no-encoder');
  fs.mkdirSync(bare);
  for (const c of ['scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']) fs.symlinkSync(path.join(MODEL, c), path.join(bare, c));
  const index = JSON.parse(fs.readFileSync(path.join(MODEL, 'model_index.json'), 'utf8')) as Record<string, unknown>;
  delete index.image_encoder; delete index.feature_extractor;
  fs.writeFileSync(path.join(bare, 'model_index.json'), JSON.stringify(index));
  const noEnc = ['generate', '--model', bare, '--prompt', 'a', '--steps', '1', '--seed', '1', '--quiet', '--out', path.join(tmp, 'y.png'), '--ip-adapter', BASE, '--ip-image', IMG];
  expectUserError(noEnc, /has no image_encoder\/ folder.*pass --image-encoder DIR/);
  // ... and with it, the run works
  const r = run([...noEnc, '--image-encoder', path.join(MODEL, 'image_encoder')]);
  assert.equal(r.code, 0, r.stderr);
});
