import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { TinyVAE, useTinyVae } from '../src/components/vae-tiny.js';
import { VispromptError } from '../src/errors.js';
import { Graph, type Value } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { readImageRGB } from '../src/io/image.js';
import { numpyToPil, VaeImageProcessor } from '../src/io/vae-image-processor.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { autoencoderTinyConfig, tinyDecode, tinyEncode } from '../src/models/autoencoder-tiny.js';
import { imageToLatents } from '../src/pipelines/invert.js';
import type { PreviewImages } from '../src/pipelines/progress.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary } from '../src/pipelines/vary.js';
import { createMethod } from '../src/methods/index.js';
import { close, golden, goldenInts, goldenPath, modelDir } from './helpers.js';

const TAESD = modelDir('tiny-taesd');
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

/** Uint8 images: max level difference. */
function maxLevelDiff(a: Uint8Array, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'image sizes');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('AutoencoderTiny parity with diffusers (tiny-taesd): encoder latents, decoder output, layer outputs', async () => {
  const cfg = autoencoderTinyConfig(Config.read(path.join(TAESD, 'config.json')));
  const vb = new WeightsView(openComponentWeights(TAESD));
  const gold = golden('tiny-taesd', 'vae');
  const g = new Graph();
  const taps = new Map<string, Value>();
  const tap = (n: string, v: Value): void => { taps.set(n, v); };
  const latents = tinyEncode(g.input('image', gold.image!.shape), vb, cfg, tap);
  g.output('latents', latents);
  g.output('decoder_output', tinyDecode(g.input('z', gold.decoder_input_latents!.shape), vb, cfg, tap));
  g.output('decoder_output_of_encoded', tinyDecode(latents, vb, cfg));
  for (const k of ['encoder.layers.2', 'encoder.layers.5', 'encoder.layers.6', 'encoder.layers.9', 'decoder.layers.4', 'decoder.layers.6', 'decoder.layers.9']) g.output(k, taps.get(k)!);
  // diffusers' get_activation returns ONE shared nn.ReLU module, so the golden's hook on decoder.layers.1
  // recorded that module's last call in the decoder: the ReLU inside the last block (layers.12.conv.3).
  g.output('decoder.layers.1', taps.get('decoder.layers.12.conv.3')!);
  const r = await runOnce(g, { image: gold.image!, z: gold.decoder_input_latents! });
  const errs = Object.keys(r).map((k) => `${k} ${close(r[k]!, gold[k]!, 1e-4, k).toExponential(1)}`);
  console.log(`tiny-taesd max abs err: ${errs.join(', ')}`);
});

test('AutoencoderTiny forward: 8-bit latent round trip and sample (vae(image).sample)', async () => {
  const gold = golden('tiny-taesd', 'vae');
  const tiny = TinyVAE.open(TAESD);
  assert.equal(tiny.scaleFactor, 4);
  const { quantizedLatents, sample } = await tiny.forward(gold.image!);
  const want = goldenInts('tiny-taesd', 'vae', 'forward.quantized_latents_uint8');
  assert.equal(maxLevelDiff(quantizedLatents, want.data), 0, 'quantized latents');
  const err = close(sample, gold.forward_sample!, 1e-4, 'forward_sample');
  const enc = close(await tiny.encodeToLatents(gold.image!), gold.latents!, 1e-4, 'encodeToLatents (scaling_factor 1)');
  const dec = close(await tiny.decode(gold.decoder_input_latents!), gold.decoder_output!, 1e-4, 'decode');
  console.log(`tiny-taesd forward: uint8 latents identical, sample max abs err ${err.toExponential(1)}; component encode ${enc.toExponential(1)}, decode ${dec.toExponential(1)}`);
});

test('text-to-image with the tiny VAE (tiny-sd15 + tiny-taesd) matches StableDiffusionPipeline(vae=AutoencoderTiny); previews of x0', async () => {
  const gold = golden('tiny-taesd', 'pipeline_t2i');
  const meta = JSON.parse(fs.readFileSync(goldenPath('tiny-taesd', 'pipeline_t2i.json'), 'utf8')) as { prompt: string; negative_prompt: string; num_inference_steps: number; guidance_scale: number; width: number; height: number };
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const tiny = useTinyVae(ck, TAESD);
  assert.equal(ck.autoencoder(), tiny);
  const previews: PreviewImages[] = [];
  const r = await textToImage(ck, {
    prompt: meta.prompt, negativePrompt: meta.negative_prompt, steps: meta.num_inference_steps, guidance: meta.guidance_scale,
    width: meta.width, height: meta.height, latents: gold.latents_in!,
    preview: { every: 2, decoder: tiny }, onProgress: (e) => { if (e.preview) previews.push(e.preview); },
  });
  const fin = close(r.latents, gold.final_latents!, 1e-4, 'final latents');
  const decoded = close(await tiny.decode(r.latents), gold.decoded!, 1e-4, 'decoded');
  const want = goldenInts('tiny-taesd', 'pipeline_t2i', 'image_uint8');
  const levels = maxLevelDiff(r.images[0]!.data, want.data);
  assert.ok(levels <= 1, `uint8 image differs by ${levels} levels`);
  console.log(`tiny-sd15 + tiny-taesd pipeline: final latents ${fin.toExponential(1)}, decoded ${decoded.toExponential(1)}, image uint8 max diff ${levels}`);

  assert.deepEqual(previews.map((p) => [p.step, p.source, p.decoder, p.images.length, p.images[0]!.width, p.images[0]!.height]), [[2, 'x0', 'tiny-vae', 1, 64, 64], [4, 'x0', 'tiny-vae', 1, 64, 64]]);
  // x0, not the latents: the last step's x0 prediction is not the final latents (DDIM keeps sqrt(alpha_prev) x0 + noise direction).
  const finalImage = r.images[0]!.data;
  assert.ok(maxLevelDiff(previews[1]!.images[0]!.data, finalImage) > 0, 'the preview decodes x0, which differs from the final latents');
});

test('previews without a tiny VAE: a latent-size linear approximation; bad --preview-every', async () => {
  const gold = golden('tiny-taesd', 'pipeline_t2i');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const previews: PreviewImages[] = [];
  await textToImage(ck, {
    prompt: 'a cat', steps: 3, guidance: 1, width: 64, height: 64, latents: gold.latents_in!, latentsOnly: true,
    preview: { every: 1 }, onProgress: (e) => { if (e.preview) previews.push(e.preview); },
  });
  assert.deepEqual(previews.map((p) => [p.step, p.decoder, p.images[0]!.width]), [[1, 'latent-rgb', 16], [2, 'latent-rgb', 16], [3, 'latent-rgb', 16]]);
  await assert.rejects(textToImage(ck, { prompt: 'a cat', steps: 2, guidance: 1, width: 64, height: 64, latents: gold.latents_in!, preview: { every: 0 } }), /--preview-every must be an integer >= 1, got 0/);
});

test('vary with the tiny VAE: reference encoded and images decoded by it, x0 previews', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const tiny = useTinyVae(ck, TAESD);
  const previews: PreviewImages[] = [];
  const r = await vary(ck, {
    reference: await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png')), method: createMethod('indetail-ip', 2), prompt: 'a photo', steps: 2, guidance: 7.5,
    latents: golden('tiny-taesd', 'pipeline_t2i').latents_in!, preview: { every: 1, decoder: tiny }, onProgress: (e) => { if (e.preview) previews.push(e.preview); },
  });
  assert.deepEqual(previews.map((p) => [p.step, p.source, p.decoder, p.images[0]!.width]), [[1, 'x0', 'tiny-vae', 64], [2, 'x0', 'tiny-vae', 64]]);
  const want = numpyToPil(new VaeImageProcessor({ vae_scale_factor: 4 }).postprocessNp(await tiny.decode(r.latents)))[0]!;
  assert.equal(maxLevelDiff(r.images[0]!.data, want.data), 0, 'the final image is the tiny VAE decode');
});

test('DDIM inversion encodes with the tiny VAE when one is set', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const image = await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png'));
  const plain = await imageToLatents(ck, image);
  const tiny = useTinyVae(ck, TAESD);
  const z = await imageToLatents(ck, image);
  const direct = await tiny.encodeToLatents(new VaeImageProcessor({ vae_scale_factor: 4 }).preprocess(image));
  assert.equal(close(z, direct, 0, 'tiny latents'), 0);
  assert.ok(close(plain, z, Infinity, 'differs') > 1e-3, 'the KL VAE and the tiny VAE give different latents');
});

test('--vae-tiny bad input: not a folder, not an AutoencoderTiny, latent space of another model', () => {
  assert.throws(() => TinyVAE.open('/nonexistent/taesd'), (e: Error) => e instanceof VispromptError && /--vae-tiny: \/nonexistent\/taesd is not a folder/.test(e.message));
  assert.throws(() => TinyVAE.open(path.join(modelDir('tiny-sd15'), 'vae')), (e: Error) => e instanceof VispromptError && /\[_class_name\]: expected an AutoencoderTiny \(TAESD\) config, got "AutoencoderKL"/.test(e.message));
  // A tiny VAE with one stage fewer (factor 2) does not fit tiny-sd15's factor-4 latents.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taesd-'));
  const raw = JSON.parse(fs.readFileSync(path.join(TAESD, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, decoder_block_out_channels: [16, 16], num_decoder_blocks: [3, 1] }));
  fs.copyFileSync(path.join(TAESD, 'diffusion_pytorch_model.safetensors'), path.join(dir, 'diffusion_pytorch_model.safetensors'));
  assert.throws(() => useTinyVae(openCheckpoint(modelDir('tiny-sd15')), dir), /downsamples by 2 but the model's VAE by 4/);
  fs.rmSync(dir, { recursive: true });
});

test('CLI: generate --vae-tiny --preview-every writes the image and the preview PNGs', () => {
  const gold = golden('tiny-taesd', 'pipeline_t2i');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taesd-cli-'));
  writeSafetensors(path.join(dir, 'lat.safetensors'), { latents: gold.latents_in! });
  const out = path.join(dir, 'img.png');
  const r = spawnSync(process.execPath, [BIN, 'generate', '--model', modelDir('tiny-sd15'), '--vae-tiny', TAESD, '--prompt', 'a photograph of an astronaut riding a horse',
    '--negative-prompt', 'blurry, low quality', '--steps', '4', '--width', '64', '--height', '64', '--latents', path.join(dir, 'lat.safetensors'), '--out', out, '--preview-every', '2', '--quiet'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['img.png', 'img.preview-step002.png', 'img.preview-step004.png', 'lat.safetensors']);
  const bad = spawnSync(process.execPath, [BIN, 'generate', '--model', modelDir('tiny-sd15'), '--vae-tiny', path.join(dir, 'nope'), '--prompt', 'x', '--steps', '1', '--out', out, '--quiet'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^\s*error: --vae-tiny: .*nope is not a folder/);
  fs.rmSync(dir, { recursive: true });
});
