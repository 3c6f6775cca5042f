import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { openSharded, WeightsView, SafetensorsSource } from '../src/io/weights.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-st-'));

function rawFile(name: string, header: unknown, data: Buffer, lieLength?: number): string {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lieLength ?? h.length));
  const p = path.join(tmp, name);
  fs.writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function expectError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof FileFormatError && pattern.test(e.message), `expected FileFormatError matching ${pattern}`);
}

test('safetensors: F32, F16 and BF16 read as float32; integers as numbers', () => {
  const f16 = Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x3555]).buffer); // 1, -2, 0.333...
  const bf16 = Buffer.from(new Uint16Array([0x3f80, 0xc040]).buffer); // 1, -3
  const f32 = Buffer.from(new Float32Array([1.5, -2.25]).buffer);
  const i64 = Buffer.from(new BigInt64Array([5n, -7n]).buffer);
  const p = rawFile('ok.safetensors', {
    a: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, b: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] },
    c: { dtype: 'F32', shape: [2], data_offsets: [10, 18] }, d: { dtype: 'I64', shape: [2], data_offsets: [18, 34] },
  }, Buffer.concat([f16, bf16, f32, i64]));
  const f = SafetensorsFile.open(p);
  assert.deepEqual([...f.readFloat32('a').data].map((v) => +v.toFixed(4)), [1, -2, 0.3333]);
  assert.deepEqual([...f.readFloat32('b').data], [1, -3]);
  assert.deepEqual([...f.readFloat32('c').data], [1.5, -2.25]);
  assert.deepEqual(f.readInts('d').data, [5, -7]);
  f.close();
});

test('safetensors: truncated file, lying header, unknown dtype, overlaps, bad JSON are named errors', () => {
  const good = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
  expectError(() => SafetensorsFile.open(rawFile('trunc.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, good.subarray(0, 10))), /trunc\.safetensors \[w\]: data ends at byte 16.*holds only 10 bytes/);
  expectError(() => SafetensorsFile.open(rawFile('lie.safetensors', { w: { dtype: 'F32', shape: [8], data_offsets: [0, 16] } }, good)), /\[w\]: shape \[8\] x F32 needs 32 bytes but data_offsets span 16/);
  expectError(() => SafetensorsFile.open(rawFile('dtype.safetensors', { w: { dtype: 'F8_E9', shape: [4], data_offsets: [0, 16] } }, good)), /\[w\]: unknown dtype "F8_E9"/);
  expectError(() => SafetensorsFile.open(rawFile('overlap.safetensors', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, good)), /overlaps tensor a/);
  expectError(() => SafetensorsFile.open(rawFile('hlen.safetensors', {}, good, 1 << 30)), /header length 1073741824 bytes but the file has/);
  const p = path.join(tmp, 'json.safetensors');
  const len = Buffer.alloc(8); len.writeBigUInt64LE(5n);
  fs.writeFileSync(p, Buffer.concat([len, Buffer.from('{oops')]));
  expectError(() => SafetensorsFile.open(p), /header is not valid JSON/);
  const tiny = path.join(tmp, 'tiny.safetensors');
  fs.writeFileSync(tiny, Buffer.from([1, 2, 3]));
  expectError(() => SafetensorsFile.open(tiny), /fewer than the 8-byte header length/);
  // A torch zip checkpoint is told apart by content (whatever its name) and sent to the weights-only reader.
  const zipped = path.join(tmp, 'model.safetensors');
  fs.writeFileSync(zipped, Buffer.from('PK\x03\x04\x14\x00\x00\x00\x00\x00', 'latin1'));
  expectError(() => SafetensorsFile.open(zipped), /torch checkpoint .* openTensorFile/);
});

test('weights view: missing and mis-shaped keys name the key and both shapes; shards resolve', () => {
  const a = path.join(tmp, 'model-00001-of-00002.safetensors');
  const b = path.join(tmp, 'model-00002-of-00002.safetensors');
  writeSafetensors(a, { 'x.weight': { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } });
  writeSafetensors(b, { 'y.bias': { shape: [3], data: new Float32Array([5, 6, 7]) } });
  const idx = path.join(tmp, 'model.safetensors.index.json');
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { 'x.weight': path.basename(a), 'y.bias': path.basename(b) } }));
  const vb = new WeightsView(openSharded(idx));
  assert.deepEqual([...vb.pp('y').get('bias', [3]).data], [5, 6, 7]);
  expectError(() => vb.pp('x').get('weight', [2, 3]), /\[x\.weight\]: weight has shape \[2, 2\] but the config expects \[2, 3\]/);
  expectError(() => vb.pp('z').get('weight', [4]), /\[z\.weight\]: missing weight \(expected shape \[4\]\)/);
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { 'x.weight': path.basename(b) } }));
  expectError(() => openSharded(idx), /lists tensor x\.weight here but the file does not hold it/);
  void SafetensorsSource;
});
