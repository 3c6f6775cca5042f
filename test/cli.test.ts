/** The CLI as a user meets it: contract flags, outputs, and one clear line for every mistake. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readPNGText } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';

const BIN = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-cli-'));
const MODEL = modelDir('tiny-sd15');
const IMAGE = goldenPath('tiny-sd15', 'inversion_input.png');

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user mistake: non-zero exit, an `error:` line matching `pattern`, no stack trace. */
function expectUserError(args: string[], pattern: RegExp): void {
  const r = run(args);
  assert.notEqual(r.code, 0, `exit code for ${args.join(' ')}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `stack trace printed:\n${r.stderr}`);
}

/** A copy of the tiny model whose `mutate` breaks one thing. */
function brokenModel(name: string, mutate: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  fs.cpSync(MODEL, dir, { recursive: true });
  mutate(dir);
  return dir;
}

const gen = (model: string, extra: string[]): string[] => ['generate', '--model', model, '--prompt', 'a cat', '--steps', '2', '--width', '64', '--height', '64', '--quiet', '--out', path.join(tmp, 'x.png'), ...extra];

test('tokenize takes texts after -- literally, including ones that start with a dash', () => {
  const r = run(['tokenize', '--model', MODEL, '--', '-a cat', '']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { input_ids: number[]; attention_mask: number[] }[];
  assert.equal(out.length, 2);
  assert.equal(out[0]!.input_ids.length, 77);
  assert.deepEqual(out[1]!.input_ids.slice(0, 3), [49406, 49407, 49407]);
  assert.equal(out[1]!.attention_mask.reduce((a, b) => a + b, 0), 2);
});

test('generate writes numbered PNGs with parameters and the final latents; same seed, same image', () => {
  const out = path.join(tmp, 'g.png');
  const lat = path.join(tmp, 'g.safetensors');
  const r = run(gen(MODEL, ['--num-images', '2', '--seed', '5', '--save-latents', lat, '--out', out]));
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['g-0.png', 'g-1.png']) assert.ok(fs.existsSync(path.join(tmp, f)), f);
  const params = JSON.parse(readPNGText(path.join(tmp, 'g-1.png')).parameters!) as Record<string, unknown>;
  assert.equal(params.prompt, 'a cat');
  assert.equal(params.seed, '5');
  assert.deepEqual(readAllFloat32(lat).latents!.shape, [2, 4, 16, 16]);
  const again = path.join(tmp, 'g2.safetensors');
  assert.equal(run(gen(MODEL, ['--num-images', '2', '--seed', '5', '--save-latents', again])).code, 0);
  assert.deepEqual(readAllFloat32(again).latents!.data, readAllFloat32(lat).latents!.data);
});

test('generate: a prompt over 77 tokens warns and truncates', () => {
  const r = run(gen(MODEL, ['--prompt', Array(100).fill('cat').join(' ')]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: prompt longer than 77 tokens was truncated/);
});

test('generate: bad sizes, steps, guidance, scheduler, latents are one-line errors', () => {
  expectUserError(gen(MODEL, ['--width', '65']), /error: --width 65 is not divisible by 4/);
  expectUserError(gen(MODEL, ['--steps', '0']), /error: --steps must be in \[1, 1000\], got 0/);
  expectUserError(gen(MODEL, ['--guidance', 'high']), /error: --guidance must be a number, got "high"/);
  expectUserError(gen(MODEL, ['--scheduler', 'euler-x']), /error: unknown scheduler "euler-x"/);
  const lat = path.join(tmp, 'badlat.safetensors');
  writeSafetensors(lat, { latents: { shape: [1, 4, 8, 8], data: new Float32Array(256) } });
  expectUserError(gen(MODEL, ['--latents', lat]), /error: --latents has shape \[1, 4, 8, 8\] but this run needs \[1, 4, 16, 16\]/);
  expectUserError(gen(MODEL, ['--latents', path.join(tmp, 'nope.safetensors')]), /error: .*nope\.safetensors: cannot open: ENOENT/);
  expectUserError(gen(path.join(tmp, 'no-such-model'), []), /error: model path not found/);
});

test('broken model folders: truncated weights, missing config key, wrong-shaped weight, missing tokenizer or component', () => {
  const trunc = brokenModel('trunc', (d) => {
    const f = path.join(d, 'unet', 'diffusion_pytorch_model.safetensors');
    fs.truncateSync(f, fs.statSync(f).size - 1000);
  });
  expectUserError(gen(trunc, []), /error: .*unet\/diffusion_pytorch_model\.safetensors \[.+\]: data ends at byte \d+ .* \(truncated file\?\)/);
  const noKey = brokenModel('nokey', (d) => {
    const f = path.join(d, 'text_encoder', 'config.json');
    const c = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
    delete c.hidden_size;
    fs.writeFileSync(f, JSON.stringify(c));
  });
  expectUserError(['embed-text', '--model', noKey, '--prompt', 'x', '--out', path.join(tmp, 'e.safetensors')], /error: .*text_encoder\/config\.json \[hidden_size\]: required config key missing/);
  const shape = brokenModel('shape', (d) => {
    const f = path.join(d, 'vae', 'config.json');
    const c = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
    c.latent_channels = 8;
    fs.writeFileSync(f, JSON.stringify(c));
  });
  expectUserError(gen(shape, []), /error: .*vae\/diffusion_pytorch_model\.safetensors \[.+\]: weight has shape \[.+\] but the config expects \[.+\]/);
  const noTok = brokenModel('notok', (d) => fs.rmSync(path.join(d, 'tokenizer'), { recursive: true }));
  expectUserError(['tokenize', '--model', noTok, '--', 'x'], /error: .*tokenizer: model folder is missing the tokenizer component/);
  const noUnet = brokenModel('nounet', (d) => fs.rmSync(path.join(d, 'unet'), { recursive: true }));
  expectUserError(gen(noUnet, []), /error: .*unet: model folder is missing the unet component that model_index\.json lists/);
});

test('embed-image and invert: a file that is not an image is named', () => {
  const notImage = path.join(tmp, 'notes.png');
  fs.writeFileSync(notImage, 'this is text');
  expectUserError(['embed-image', '--model', MODEL, '--image', notImage, '--out', path.join(tmp, 'i.safetensors')], /error: .*notes\.png: not an image/);
  expectUserError(['invert', '--model', MODEL, '--image', notImage, '--save-chain', path.join(tmp, 'c.safetensors')], /error: .*notes\.png: not an image/);
});

test('vary: resized reference warns; bad lambdas, stratified steps, method are one-line errors', () => {
  const base = ['vary', '--model', MODEL, '--image', IMAGE, '--prompt', 'a cat', '--steps', '2', '--quiet', '--seed', '1', '--out', path.join(tmp, 'v.png')];
  const big = goldenPath('tiny-sd15', 'image_encoder_input_1.png'); // 96x72
  const r = run(['vary', ...base.slice(1).map((a) => (a === IMAGE ? big : a)), '--width', '64', '--height', '64']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: reference image is 96x72; resized to 64x64/);
  expectUserError([...base, '--lambda-p', '0', '--lambda-g', '0'], /error: --lambda-p and --lambda-g are both 0/);
  expectUserError([...base, '--stratified-steps', '5'], /error: --stratified-steps must be an integer in \[0, 2\]/);
  expectUserError([...base, '--method', 'ip-magic'], /error: --method must be one of indetail-ip, kv-concat, kv-replace, style-aligned/);
  const notImage = path.join(tmp, 'ref.jpg');
  fs.writeFileSync(notImage, Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x01]));
  expectUserError(['vary', ...base.slice(1).map((a) => (a === IMAGE ? notImage : a))], /error: .*ref\.jpg: not an image/);
});

test('every command has --help', () => {
  for (const cmd of ['tokenize', 'embed-text', 'embed-image', 'generate', 'invert', 'vary', 'inject', 'edit', 'fuse', 'train-aligner', 'train-attribute']) {
    const r = run([cmd, '--help']);
    assert.equal(r.code, 0, `${cmd} --help exit ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: visprompt ${cmd}`));
  }
});
