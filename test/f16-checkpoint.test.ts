/**
 * Half-precision checkpoints without a cache folder (issue 15 part 3): F16 weights are converted once per
 * process into a float32 mirror in a temporary folder that ONNX Runtime reads by offset (as an F32
 * checkpoint), so no JavaScript copy is alive while sessions are built; the folder goes when the process does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { toHalfBits } from '../bench/f16-weights.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { configureEngine } from '../src/graph/session.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

const WEIGHT_FILES = ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'];

/** A copy of tiny-sd15 whose three weight files hold `map(tensor)` as F32 (or rounded to F16). */
function copyModel(dtype: 'F32' | 'F16', map: (name: string, data: Float32Array) => Float32Array = (_, d) => d): string {
  const src = modelDir('tiny-sd15');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vp-f16test-${dtype}-`));
  fs.cpSync(src, dir, { recursive: true, filter: (p) => !p.endsWith('.safetensors') || !WEIGHT_FILES.some((w) => p.endsWith(w)) });
  for (const w of WEIGHT_FILES) {
    const f = SafetensorsFile.open(path.join(src, w));
    const tensors: Record<string, Tensor> = {};
    for (const name of f.tensors.keys()) { const t = f.readFloat32(name); tensors[name] = { shape: t.shape, data: map(name, t.data) }; }
    f.close();
    if (dtype === 'F32') writeSafetensors(path.join(dir, w), tensors);
    else writeF16(path.join(dir, w), tensors);
  }
  return dir;
}

function writeF16(file: string, tensors: Record<string, Tensor>): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const h = new Uint16Array(t.data.length);
    for (let i = 0; i < h.length; i++) h[i] = toHalfBits(t.data[i]!);
    header[name] = { dtype: 'F16', shape: t.shape, data_offsets: [off, off + h.byteLength] };
    parts.push(Buffer.from(h.buffer));
    off += h.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...parts]));
}

const mirrorsOf = (pid: number): string[] => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`visprompt-f32-${pid}-`)).map((n) => path.join(os.tmpdir(), n));

const latents: Tensor = { shape: [1, 4, 16, 16], data: new Float32Array(1024).map((_, i) => Math.sin(i * 0.37)) };
const run = async (dir: string): Promise<Tensor> => (await textToImage(openCheckpoint(dir), { prompt: 'a red fox', steps: 2, guidance: 6, latents, width: 64, height: 64 })).latents;

test('F16 checkpoint, no cache folder: float32 mirrors in a temp folder; the result is the F32 pipeline on the same (F16-rounded) weights, bit for bit; in-memory conversion agrees', async () => {
  const dirs: string[] = [];
  try {
    // weights off the F16 grid (a small deterministic perturbation), so F16 storage really rounds them
    const perturb = (name: string, d: Float32Array): Float32Array => d.map((x, i) => x * (1 + 3e-4 * Math.sin(i * 1.7 + name.length)));
    const f32 = copyModel('F32', perturb); dirs.push(f32);
    const f16 = copyModel('F16', perturb); dirs.push(f16);
    const f32Rounded = copyModel('F32', (n, d) => perturb(n, d).map((x) => halfToFloat(toHalfBits(x)))); dirs.push(f32Rounded);
    const fromF16 = await run(f16);
    const mirrors = mirrorsOf(process.pid);
    assert.equal(mirrors.length, 1, 'one temp mirror folder for this process');
    assert.equal(fs.readdirSync(mirrors[0]!).filter((f) => f.endsWith('.f32.safetensors')).length, 3, 'unet, vae, text encoder mirrored');
    const exact = await run(f32Rounded);
    assert.deepEqual([...fromF16.data], [...exact.data], 'F16 path = F32 path on the F16-rounded weights');
    const full = await run(f32);
    const scale = Math.max(...full.data.map(Math.abs));
    const err = maxAbsDiff(fromF16, full);
    console.log(`# F16 checkpoint vs its F32 original: final latents max abs diff ${err.toExponential(2)} (max |latent| ${scale.toFixed(2)})`);
    assert.ok(err > 0 && err <= 2e-3 * scale, `F16 weight rounding should move the latents a little: ${err}`);
    // the pre-existing in-memory conversion (opt-in) gives the same numbers
    configureEngine({ halfPrecisionMirror: 'memory' });
    const f16b = copyModel('F16', perturb); dirs.push(f16b);
    const inMemory = await run(f16b);
    assert.deepEqual([...inMemory.data], [...fromF16.data], 'in-memory conversion = temp mirror');
  } finally {
    configureEngine({ halfPrecisionMirror: 'temp' });
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
});

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A child that builds the text encoder of the F16 tiny model, reports, then exits or waits to be killed. */
async function child(mode: 'exit' | 'wait-for-sigterm'): Promise<{ pid: number; mirrors: string[]; gone: boolean }> {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const script = `
    const { openCheckpoint } = await import(${JSON.stringify(path.join(dist, 'src/components/checkpoint.js'))});
    const ck = openCheckpoint(${JSON.stringify(modelDir('tiny-sd15'))});
    await ck.textEncoder().encode(['a red fox']);
    const fs = await import('node:fs'), os = await import('node:os'), path = await import('node:path');
    const mine = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('visprompt-f32-' + process.pid + '-')).map((n) => path.join(os.tmpdir(), n));
    console.log('ready ' + JSON.stringify(mine));
    ${mode === 'exit' ? '' : 'setInterval(() => {}, 1000);'}`;
  const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let mirrors: string[] = [];
  await new Promise<void>((resolve) => p.stdout.on('data', (d: Buffer) => {
    const m = /ready (\[.*\])/.exec(d.toString());
    if (m) { mirrors = JSON.parse(m[1]!) as string[]; resolve(); }
  }));
  if (mode === 'wait-for-sigterm') p.kill('SIGTERM');
  await new Promise((resolve) => p.on('close', resolve));
  return { pid: p.pid!, mirrors, gone: mirrors.every((m) => !fs.existsSync(m)) };
}

test('the temp mirror folder is removed when the process exits, and when it is killed by SIGTERM', async () => {
  for (const mode of ['exit', 'wait-for-sigterm'] as const) {
    const r = await child(mode);
    assert.equal(r.mirrors.length, 1, `${mode}: the child had one mirror folder`);
    assert.ok(r.gone, `${mode}: ${r.mirrors[0]} left behind`);
  }
});
