/**
 * Pickled single files through the pipeline and the CLI (split out of pickle.test.ts, which keeps the pure parsing
 * and refusal tests: those are the mutation slice `io-formats`' fast tests). Here: a pickled single-file checkpoint
 * with --config equals the diffusers folder's golden (SD 1.5 and SDXL), and `visprompt inspect` / `generate` on
 * pickles (exit codes, one error line, nothing executed); and the slow library checks moved out of pickle.test.ts
 * (that file is the io-formats mutation slice's, run once per surviving mutant): a diffusers folder of .bin weights,
 * every weight of tiny-sd15.ckpt against its folder, the memo DAG cut off at the 10M-visit budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { openOriginalCheckpoint } from '../src/io/original-checkpoint.js';
import { toOriginalLayout } from '../src/io/original-keymap.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { openTensorFile } from '../src/io/tensor-file.js';
import { openComponentWeights } from '../src/io/weights.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { FIXTURES, close, golden, goldenPath, modelDir } from './helpers.js';
import { op, writePickleZip, writeTorchLegacy, writeTorchZip } from './torch-writer.js';
import { refusedMatching } from './refusals.js';

const DIR = path.join(FIXTURES, 'models', 'tiny-pickles');
const GOLD = path.join(FIXTURES, 'goldens', 'tiny-pickles');
const BIN = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-pickle-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const TORCH2ST: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL' };
const tensorsJson = JSON.parse(fs.readFileSync(path.join(GOLD, 'tensors.json'), 'utf8')) as {
  files: Record<string, { tensors: { name: string; dtype: string; shape: number[] }[] }>; malicious: { marker_file?: string };
};
const MARKER = '/tmp/visprompt-pwned';

test('tiny-sd15.ckpt with --config (the folder\'s configs) equals the diffusers-folder pipeline golden', async () => {
  const meta = JSON.parse(fs.readFileSync(goldenPath('tiny-sd15', 'pipeline_t2i.json'), 'utf8')) as {
    num_inference_steps: number; width: number; height: number; cases: { prefix: string; guidance_scale: number; negative_prompt: string | null; prompt: string }[];
  };
  const c = meta.cases[0]!;
  const gold = golden('tiny-sd15', 'pipeline_t2i');
  const ck = openCheckpoint(path.join(DIR, 'tiny-sd15.ckpt'), { config: modelDir('tiny-sd15') });
  assert.deepEqual(ck.warnings, []);
  const r = await textToImage(ck, {
    prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: meta.num_inference_steps, guidance: c.guidance_scale,
    width: meta.width, height: meta.height, latents: gold.latents_in!,
  });
  const err = close(r.latents, gold[`${c.prefix}.final_latents`]!, 1e-4, 'final latents');
  console.log(`tiny-sd15.ckpt --config: final latents max abs err ${err.toExponential(2)}`);
  assert.throws(() => openCheckpoint(modelDir('tiny-sd15'), { config: modelDir('tiny-sd15') }), /--config pairs a single checkpoint file/);
});

test('an SDXL single file pickled (zip, state_dict) with --config tiny-sdxl equals the folder golden (DDIM)', async () => {
  const M = 'tiny-sdxl';
  const read = (part: string): Record<string, Tensor> => {
    const src = openComponentWeights(path.join(modelDir(M), part));
    return Object.fromEntries([...src.keys()].map((k) => [k, src.read(k)]));
  };
  const orig = toOriginalLayout({ unet: read('unet'), vae: read('vae'), text_encoder: read('text_encoder'), text_encoder_2: read('text_encoder_2') });
  const file = path.join(tmp, 'tiny-sdxl.ckpt');
  writeTorchZip(file, Object.fromEntries(Object.entries(orig).map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }])), { wrap: true });
  const ck = openCheckpoint(file, { config: modelDir(M) });
  assert.deepEqual(ck.warnings, []);
  const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'pipeline_t2i_ddim.json'), 'utf8')) as { prompt: string; negative_prompt: string };
  const g = golden(M, 'pipeline_t2i_ddim');
  const r = await textToImage(ck, { prompt: meta.prompt, negativePrompt: meta.negative_prompt, steps: 5, guidance: 5, latents: g.latents_in, scheduler: 'ddim', latentsOnly: true });
  const err = close(r.latents, g.final_latents!, 1e-4, 'final latents');
  console.log(`tiny-sdxl pickled single file --config: final latents max abs err ${err.toExponential(2)}`);
});

test('malicious.ckpt through the CLI (inspect, generate): exit non-zero, one error line naming the global, nothing runs', () => {
  fs.rmSync(MARKER, { force: true });
  const file = path.join(DIR, 'malicious.ckpt');
  for (const args of [['inspect', file], ['generate', '--model', file, '--prompt', 'x', '--steps', '1', '--out', path.join(tmp, 'm.png'), '--quiet']]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr.trim(), /^error: .*posix\.system/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(fs.existsSync(tensorsJson.malicious.marker_file ?? MARKER), false, 'the marker file exists: something was executed');
});

test('visprompt inspect prints {name, dtype, shape} for pickles and safetensors; refused files exit 1 with one error line', () => {
  const run = (args: string[]): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const r = run(['inspect', path.join(DIR, 'ip-adapter_sd15.bin')]);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { name: string; dtype: string; shape: number[] }[];
  assert.deepEqual(got, tensorsJson.files['ip-adapter_sd15.bin']!.tensors.map((t) => ({ name: t.name, dtype: TORCH2ST[t.dtype], shape: t.shape })));
  const st = path.join(modelDir('tiny-sd15'), 'vae', 'diffusion_pytorch_model.safetensors');
  const s = run(['inspect', st]);
  assert.equal(s.code, 0);
  const f = SafetensorsFile.open(st);
  assert.deepEqual(JSON.parse(s.stdout), [...f.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
  f.close();
  const bin = fs.readFileSync(path.join(DIR, 'ip-adapter_sd15.bin'));
  fs.writeFileSync(path.join(tmp, 'cut.bin'), bin.subarray(0, bin.length >> 1));
  const bad = run(['inspect', path.join(tmp, 'cut.bin')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim(), /^error: .*cut\.bin: not a readable torch zip checkpoint/);
});

// ---------------------------------------------------------------------------------------------------
// Slow library checks (moved from pickle.test.ts)

/** A refusal: a FileFormatError naming the file, on one line, matching `re`. */

test('a diffusers folder holding pytorch .bin weights (single or sharded) loads them (weights-only)', () => {
  const dir = path.join(tmp, 'unet-bin');
  fs.mkdirSync(dir);
  const st = SafetensorsFile.open(path.join(modelDir('tiny-sd15'), 'unet', 'diffusion_pytorch_model.safetensors'));
  const entries = Object.fromEntries([...st.tensors.values()].map((i) => [i.name, { dtype: i.dtype, shape: i.shape, data: st.readBytes(i.name) }]));
  writeTorchZip(path.join(dir, 'diffusion_pytorch_model.bin'), entries);
  const src = openComponentWeights(dir);
  for (const i of st.tensors.values()) assert.equal(maxAbsDiff(src.read(i.name), st.readFloat32(i.name)), 0, i.name);
  // Sharded: pytorch_model.bin.index.json over two shards (one of them legacy format).
  const sharded = path.join(tmp, 'unet-sharded');
  fs.mkdirSync(sharded);
  const names = Object.keys(entries);
  const half = names.length >> 1;
  writeTorchZip(path.join(sharded, 'pytorch_model-00001-of-00002.bin'), Object.fromEntries(names.slice(0, half).map((n) => [n, entries[n]!])));
  writeTorchLegacy(path.join(sharded, 'pytorch_model-00002-of-00002.bin'), Object.fromEntries(names.slice(half).map((n) => [n, entries[n]!])));
  fs.writeFileSync(path.join(sharded, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: Object.fromEntries(names.map((n, i) => [n, `pytorch_model-0000${i < half ? 1 : 2}-of-00002.bin`])) }));
  const sh = openComponentWeights(sharded);
  assert.equal([...sh.keys()].length, names.length);
  for (const i of st.tensors.values()) assert.equal(maxAbsDiff(sh.read(i.name), st.readFloat32(i.name)), 0, i.name);
  fs.writeFileSync(path.join(sharded, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { [names[0]!]: 'pytorch_model-00002-of-00002.bin' } }));
  refusedMatching(() => openComponentWeights(sharded), path.join(sharded, 'pytorch_model-00002-of-00002.bin'), /lists tensor .* here but the file does not hold it/);
  st.close();
});

test('tiny-sd15.ckpt: every UNet/VAE/text-encoder weight equals the diffusers folder it was converted from', () => {
  const ck = openOriginalCheckpoint(path.join(DIR, 'tiny-sd15.ckpt'));
  let n = 0;
  for (const part of ['unet', 'vae', 'text_encoder'] as const) {
    const src = ck[part]!.weights();
    const folder = openComponentWeights(path.join(modelDir('tiny-sd15'), part));
    for (const k of src.keys()) {
      assert.equal(maxAbsDiff(src.read(k), folder.read(k)), 0, `${part} ${k}`);
      n++;
    }
  }
  ck.close();
  assert.ok(n > 700, `${n} weights compared`);
});

test('an exponential DAG through the memo (each list holds the previous one twice) is cut off, not walked', () => {
  // Its own test: walking up to the visit budget takes seconds, the other refusals milliseconds.
  const parts = [op.proto(), op.emptyList(), Buffer.from([0x71, 0])];
  for (let i = 1; i < 40; i++) parts.push(op.emptyList(), Buffer.from([0x71, i]), op.mark(), Buffer.from([0x68, i - 1, 0x68, i - 1]), Buffer.from('e'), Buffer.from('0'));
  parts.push(Buffer.from([0x68, 39]), op.stop());
  const dag = path.join(tmp, 'dag.pt');
  writePickleZip(dag, Buffer.concat(parts));
  refusedMatching(() => openTensorFile(dag), dag, /more than \d+ references/);
});
