/**
 * Weights-only torch pickles: every tensor of the reference files (zip and legacy format) equals what
 * torch saved (dtype, shape, stride, storage offset, file offset, sha256 of the elements); weight names;
 * hostile and broken files are refused with one-line errors and nothing is executed; a pickled
 * single-file checkpoint holds the diffusers folder's weights. Library calls only (seconds): the pipeline goldens,
 * the CLI (`inspect`, `generate` on pickles) and the slow library checks (whole-model folders of .bin weights, every
 * weight of tiny-sd15.ckpt, the 10M-visit memo DAG) are in pickle-pipeline.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { SafetensorsFile, readAllFloat32 } from '../src/io/safetensors.js';
import { inspectTensorFile, openTensorFile, openTensorSource } from '../src/io/tensor-file.js';
import { TorchCheckpointFile } from '../src/io/torch-checkpoint.js';
import { openComponentWeights } from '../src/io/weights.js';
import { maxAbsDiff } from '../src/tensor.js';
import { FIXTURES, goldenPath } from './helpers.js';
import { op, writePickleZip, writeTorchLegacy, writeTorchZip } from './torch-writer.js';
import { refusedMatching } from './refusals.js';

const DIR = path.join(FIXTURES, 'models', 'tiny-pickles');
const GOLD = path.join(FIXTURES, 'goldens', 'tiny-pickles');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-pickle-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const TORCH2ST: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL' };

interface GoldTensor {
  name: string; dtype: string; shape: number[]; stride: number[]; storage_offset: number; sha256: string;
  storage: { key: string; data_offset_in_file: number };
}
const tensorsJson = JSON.parse(fs.readFileSync(path.join(GOLD, 'tensors.json'), 'utf8')) as { files: Record<string, { tensors: GoldTensor[] }>; malicious: { marker_file?: string } };
const MARKER = '/tmp/visprompt-pwned';

/** A refusal: a FileFormatError naming the file, on one line, matching `re`. */

for (const name of ['tiny-sd15.ckpt', 'ip-adapter_sd15.bin', 'legacy.pt']) {
  test(`${name}: every tensor equals what torch saved (dtype, shape, stride, offsets, sha256 of the elements)`, () => {
    const f = TorchCheckpointFile.open(path.join(DIR, name));
    try {
      const want = tensorsJson.files[name]!.tensors;
      assert.equal(f.entries.length, want.length);
      const byName = new Map(f.entries.map((e) => [e.name, e]));
      for (const w of want) {
        const e = byName.get(w.name);
        assert.ok(e, `missing ${w.name}`);
        assert.equal(e.dtype, TORCH2ST[w.dtype], w.name);
        assert.deepEqual([...e.shape], w.shape, w.name);
        assert.deepEqual([...e.stride], w.stride, w.name);
        assert.equal(e.storageOffset, w.storage_offset, w.name);
        assert.equal(e.storageKey, w.storage.key, w.name);
        assert.equal(e.storageDataOffset, w.storage.data_offset_in_file, w.name);
        assert.equal(crypto.createHash('sha256').update(f.bytesOf(e)).digest('hex'), w.sha256, w.name);
      }
    } finally {
      f.close();
    }
  });
}

test('legacy.pt: values (every dtype, transposed and shared views, 0-dim, empty, Parameter) equal legacy_values.safetensors', () => {
  const f = openTensorFile(path.join(DIR, 'legacy.pt'));
  const ref = SafetensorsFile.open(path.join(GOLD, 'legacy_values.safetensors'));
  try {
    assert.equal(f.format, 'torch-legacy');
    for (const [key, info] of ref.tensors) {
      const name = key.replace('/', '.');
      assert.ok(f.has(name), name);
      if (info.dtype === 'F32') {
        assert.equal(maxAbsDiff(f.readFloat32(name), ref.readFloat32(key)), 0, name);
      } else {
        assert.deepEqual(f.readInts(name), ref.readInts(key), name);
      }
    }
    // The module state's OrderedDict attributes (BUILD) are not tensors; Parameter is a plain tensor.
    assert.deepEqual([...f.info('param').shape], [2, 2]);
    assert.deepEqual(f.readRows('f32.transposed', 2, 3).data, f.readFloat32('f32.transposed').data.slice(8, 20));
  } finally {
    f.close();
    ref.close();
  }
});

test('weight names: top-level state_dict unwrapped, nested dicts joined with "." (IP-Adapter .bin = its safetensors keys); plain values as metadata', () => {
  const ck = openTensorFile(path.join(DIR, 'tiny-sd15.ckpt'));
  assert.equal(ck.format, 'torch-zip');
  assert.equal(ck.tensors.size, 730);
  assert.ok(ck.has('model.diffusion_model.input_blocks.0.0.weight'));
  assert.equal(ck.metadata.global_step, '1234');
  ck.close();
  const ip = openTensorSource(path.join(DIR, 'ip-adapter_sd15.bin'));
  const keys = [...ip.keys()];
  assert.ok(keys.includes('image_proj.proj.weight') && keys.includes('ip_adapter.1.to_k_ip.weight'), keys.slice(0, 4).join(', '));
  assert.deepEqual(ip.shape('image_proj.proj.weight'), [128, 32]);
  // inspect: '/' paths, no unwrapping, in pickling order.
  const listed = inspectTensorFile(path.join(DIR, 'tiny-sd15.ckpt'));
  assert.deepEqual(listed[0], { name: 'state_dict/model.diffusion_model.input_blocks.0.0.bias', dtype: 'F16', shape: [32] });
  assert.deepEqual(inspectTensorFile(path.join(DIR, 'legacy.pt')).map((e) => e.name), tensorsJson.files['legacy.pt']!.tensors.map((t) => t.name));
});

test('files written by the test writer (zip with state_dict, legacy, every dtype) round-trip; magic decides, not the extension', () => {
  const t = {
    a: { dtype: 'F32' as const, shape: [2, 3], data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, -6]).buffer) },
    b: { dtype: 'I64' as const, shape: [2], data: new Uint8Array(new BigInt64Array([7n, -8n]).buffer) },
    c: { dtype: 'BOOL' as const, shape: [3], data: new Uint8Array([1, 0, 1]) },
    d: { dtype: 'I16' as const, shape: [1], data: new Uint8Array(new Int16Array([-3]).buffer) },
    e: { dtype: 'I8' as const, shape: [2], data: new Uint8Array([0xff, 2]) },
  };
  const zip = path.join(tmp, 'sd.safetensors'); // a zip, whatever its name
  writeTorchZip(zip, t, { wrap: true });
  const legacy = path.join(tmp, 'legacy.bin');
  writeTorchLegacy(legacy, t);
  for (const p of [zip, legacy]) {
    const f = openTensorFile(p);
    assert.deepEqual([...f.tensors.keys()], ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual([...f.readFloat32('a').data], [1, 2, 3, 4, 5, -6]);
    assert.deepEqual(f.readInts('b').data, [7, -8]);
    assert.deepEqual(f.readInts('c').data, [1, 0, 1]);
    assert.deepEqual(f.readInts('d').data, [-3]);
    assert.deepEqual(f.readInts('e').data, [-1, 2]);
    f.close();
  }
  // Zip storages are 64-byte aligned F32: offered to ONNX Runtime by location.
  const loc = openTensorSource(zip).location('a');
  assert.ok(loc && loc.offset % 64 === 0);
});

// ---------------------------------------------------------------------------------------------------
// Refusals

test('malicious.ckpt (GLOBAL posix system + REDUCE) is refused naming the global; nothing runs', () => {
  fs.rmSync(MARKER, { force: true });
  const file = path.join(DIR, 'malicious.ckpt');
  refusedMatching(() => TorchCheckpointFile.open(file), file, /global 'posix\.system' is not allowed/);
  refusedMatching(() => inspectTensorFile(file), file, /posix\.system/);
  refusedMatching(() => openCheckpoint(file), file, /posix\.system/);
  const evil = path.join(tmp, 'evil');
  fs.mkdirSync(evil);
  fs.copyFileSync(file, path.join(evil, 'pytorch_model.bin'));
  refusedMatching(() => openComponentWeights(evil), path.join(evil, 'pytorch_model.bin'), /posix\.system/);
  assert.equal(fs.existsSync(tensorsJson.malicious.marker_file ?? MARKER), false, 'the marker file exists: something was executed');
});

test('forbidden globals (GLOBAL and STACK_GLOBAL), opcodes, lengths and views are refused with one-line errors', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['exec', Buffer.concat([op.proto(), op.global('builtins', 'exec'), op.str('print(1)'), Buffer.from([0x85]), op.reduce(), op.stop()]), /global 'builtins\.exec' is not allowed/],
    ['stack-global', Buffer.concat([op.proto(), op.str('os'), op.str('system'), Buffer.from([0x93]), op.stop()]), /global 'os\.system' is not allowed/],
    ['lookalike', Buffer.concat([op.proto(), op.global('torch._utils', '_rebuild_tensor_v2x'), op.stop()]), /torch\._utils\._rebuild_tensor_v2x/],
    ['inst', Buffer.concat([op.proto(), Buffer.from('(ios\nsystem\n'), op.stop()]), /opcode 0x69 \(INST\)/],
    ['newobj', Buffer.concat([op.proto(), op.global('collections', 'OrderedDict'), op.emptyTuple(), Buffer.from([0x81]), op.stop()]), /0x81 \(NEWOBJ\)/],
    ['ext', Buffer.concat([op.proto(), Buffer.from([0x82, 1]), op.stop()]), /EXT1/],
    ['unknown', Buffer.concat([op.proto(), Buffer.from([0xff]), op.stop()]), /opcode 0xff/],
    ['long-string', Buffer.concat([op.proto(), Buffer.from([0x58, 0xff, 0xff, 0xff, 0x7f]), Buffer.from('abc'), op.stop()]), /2147483647 bytes .* runs past the end/],
    ['bytes8', Buffer.concat([op.proto(), Buffer.from([0x8e, 0, 0, 0, 0, 0, 0, 0, 0x80]), op.stop()]), /runs past the end/],
    ['long4', Buffer.concat([op.proto(), Buffer.from([0x8b, 0, 0, 0, 1]), op.stop()]), /integer literal of 16777216 bytes/],
    ['no-stop', Buffer.concat([op.proto(), op.emptyDict()]), /without a STOP/],
    ['underflow', Buffer.concat([op.proto(), Buffer.from('s'), op.stop()]), /stack underflow/],
    ['call-storage', Buffer.concat([op.proto(), op.global('torch', 'FloatStorage'), op.emptyTuple(), op.reduce(), op.stop()]), /torch\.FloatStorage is not callable/],
    ['build-list', Buffer.concat([op.proto(), op.emptyList(), op.emptyDict(), Buffer.from('b'), op.stop()]), /BUILD/],
    ['self-ref', Buffer.concat([op.proto(), op.emptyList(), Buffer.from([0x71, 0]), Buffer.from([0x68, 0]), Buffer.from('a'), op.stop()]), /nests deeper/],
    ['protocol-0', Buffer.concat([Buffer.from([0x80, 0]), op.stop()]), /protocol 0/],
    ['out-of-storage', Buffer.concat([op.proto(), op.global('torch._utils', '_rebuild_tensor'), op.mark(),
      op.mark(), op.str('storage'), op.global('torch', 'FloatStorage'), op.str('0'), op.str('cpu'), op.int(4), op.tuple(), op.binpersid(),
      op.int(2), op.mark(), op.int(3), op.tuple(), op.mark(), op.int(1), op.tuple(), op.tuple(), op.reduce(), op.stop()]), /reaches element 4 of storage '0', which holds 4/],
  ];
  for (const [name, pickle, re] of cases) {
    const p = path.join(tmp, `${name}.pt`);
    writePickleZip(p, pickle, { 0: new Uint8Array(16) });
    refusedMatching(() => openTensorFile(p), p, re);
  }
});

test('truncated and malformed archives and legacy files are refused with one-line errors', () => {
  const bin = fs.readFileSync(path.join(DIR, 'ip-adapter_sd15.bin'));
  const cut = path.join(tmp, 'cut.bin');
  fs.writeFileSync(cut, bin.subarray(0, bin.length >> 1));
  refusedMatching(() => openTensorFile(cut), cut, /no end-of-central-directory record \(the file is truncated/);
  // The directory intact but a storage cut short: its member runs past the end.
  const holed = path.join(tmp, 'holed.bin');
  const eocd = bin.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const cdOffset = bin.readUInt32LE(eocd + 16);
  fs.writeFileSync(holed, Buffer.concat([bin.subarray(0, 4096), bin.subarray(cdOffset)]));
  refusedMatching(() => openTensorFile(holed), holed, /truncated/);
  const legacy = fs.readFileSync(path.join(DIR, 'legacy.pt'));
  for (const n of [10, 1000, 2500, legacy.length - 3]) {
    const p = path.join(tmp, `legacy-${n}.pt`);
    fs.writeFileSync(p, legacy.subarray(0, n));
    refusedMatching(() => openTensorFile(p), p, /truncated/);
  }
  const junk = path.join(tmp, 'junk.ckpt');
  fs.writeFileSync(junk, 'hello world, not a checkpoint');
  refusedMatching(() => openTensorFile(junk), junk, /not a safetensors file or torch checkpoint/);
});

test('readAllFloat32 of safetensors still works beside pickles (no extension rules left)', () => {
  const p = path.join(tmp, 'x.ckpt');
  fs.copyFileSync(goldenPath('tiny-sd15', 'vae.safetensors'), p);
  assert.ok(Object.keys(readAllFloat32(p)).length > 0);
});
