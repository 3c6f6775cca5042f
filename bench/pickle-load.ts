/**
 * `npm run bench:pickle [-- --gib N]`: loading a large pickled checkpoint against its safetensors twin.
 *
 * Writes one set of random F32 tensors (default 2 GiB: 60 large tensors plus 1000 small ones, the
 * shape of a real state dict) three times into a temp folder — safetensors, torch zip (torch.save's
 * default) and torch legacy (_use_new_zipfile_serialization=False) — then, each in a fresh child
 * process, opens the file with openTensorFile and reads every tensor as float32 (what building a
 * model does), dropping each after use. Reports open_s (header / pickle parse), read_s, total_s and
 * peak RSS (and peak RSS / file size: a pickle must not need twice its size in memory). The files were
 * just written, so reads come from the page cache for all three alike. The folder is deleted at the end.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsWriter } from '../src/io/safetensors.js';
import { openTensorFile } from '../src/io/tensor-file.js';
import { writeTorchLegacy, writeTorchZip, type RawTensor } from '../test/torch-writer.js';

const self = fileURLToPath(import.meta.url);

function layout(gib: number): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  for (let i = 0; i < 1000; i++) out.push({ name: `model.small.${i}.bias`, shape: [320] });
  const bigElems = Math.floor((gib * 2 ** 30 - 1000 * 320 * 4) / 4 / 60 / 1024) * 1024;
  for (let i = 0; i < 60; i++) out.push({ name: `model.large.${i}.weight`, shape: [bigElems / 1024, 1024] });
  return out;
}

function values(shape: readonly number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s >>> 8) / 2 ** 24 - 0.5; }
  return a;
}

function child(file: string): void {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const f = openTensorFile(file);
  const t1 = performance.now();
  let sum = 0;
  let bytes = 0;
  for (const name of f.tensors.keys()) {
    const t = f.readFloat32(name);
    sum += t.data[0] ?? 0;
    bytes += t.data.byteLength;
  }
  f.close();
  const t2 = performance.now();
  const peak = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ format: f.format, open_s: (t1 - t0) / 1000, read_s: (t2 - t1) / 1000, total_s: (t2 - t0) / 1000, tensors: f.tensors.size, float32_bytes: bytes, checksum: sum, start_rss_mib: rss0 / 2 ** 20, peak_rss_mib: peak / 2 ** 20 }));
}

function main(): void {
  const gibArg = process.argv.indexOf('--gib');
  const gib = gibArg > 0 ? Number(process.argv[gibArg + 1]) : 2;
  if (!(gib > 0 && gib <= 16)) throw new Error(`--gib must be in (0, 16], got ${process.argv[gibArg + 1]}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-bench-pickle-'));
  try {
    const specs = layout(gib);
    const tensors: Record<string, RawTensor> = {};
    specs.forEach((s, i) => {
      tensors[s.name] = { dtype: 'F32', shape: s.shape, data: () => { const v = values(s.shape, i + 1); return new Uint8Array(v.buffer, v.byteOffset, v.byteLength); } };
    });
    const files = { safetensors: path.join(dir, 'model.safetensors'), 'torch-zip': path.join(dir, 'model.ckpt'), 'torch-legacy': path.join(dir, 'model-legacy.pt') };
    const w0 = performance.now();
    const w = new SafetensorsWriter(files.safetensors, specs);
    specs.forEach((s, i) => w.writeRows(s.name, 0, values(s.shape, i + 1)));
    w.close();
    writeTorchZip(files['torch-zip'], tensors, { wrap: true });
    writeTorchLegacy(files['torch-legacy'], tensors);
    process.stderr.write(`wrote 3 x ${gib} GiB in ${((performance.now() - w0) / 1000).toFixed(1)} s to ${dir}\n`);
    const results: Record<string, unknown>[] = [];
    for (const [label, file] of Object.entries(files)) {
      const r = spawnSync(process.execPath, [self, '--child', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (r.status !== 0) throw new Error(`${label}: child exited ${r.status}`);
      const m = JSON.parse(r.stdout) as { peak_rss_mib: number };
      const size = fs.statSync(file).size;
      results.push({ measure: 'checkpoint_load', file: label, file_mib: size / 2 ** 20, ...m, peak_rss_over_file: (m.peak_rss_mib * 2 ** 20) / size });
    }
    for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') child(process.argv[3]!);
else main();
