/**
 * Where weights come from: SafetensorsSource / WeightsView (key paths, shape checks, file locations for
 * ONNX Runtime), the F32 mirrors of half-precision files (f32-mirror.ts: contents, cache key, temp folder),
 * component folders (which file wins), shard indexes (safetensors and torch .bin) and TensorFileSource.
 * Files are built by hand (safetensors: u64 length + JSON header + data) or with test/torch-writer.ts;
 * every message is checked word for word. Milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { f32Mirror, setWeightMirrorFolder } from '../src/io/f32-mirror.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { isTorchPickle, openShardedTensorFiles, openTensorFile, openTensorSource, TensorFileSource } from '../src/io/tensor-file.js';
import { openComponentWeights, openSharded, SafetensorsSource, WeightsView, type TensorSource } from '../src/io/weights.js';
import { setHost } from '../src/runtime/host.js';
import { writeTorchZip } from './torch-writer.js';
import { refused } from './refusals.js';
import { f32, u16 } from './bytes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-wsrc-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

/** A safetensors file: `tensors` in order, each [dtype, shape, data bytes]; returns the path and each data offset. */
function st(tensors: Record<string, [string, number[], Buffer]>, file = path.join(tmp, `s${seq++}.safetensors`), pad8 = false): { file: string; offsets: Record<string, number> } {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [k, [dtype, shape, b]] of Object.entries(tensors)) {
    header[k] = { dtype, shape, data_offsets: [off, off + b.length] };
    parts.push(b);
    off += b.length;
  }
  let h = Buffer.from(JSON.stringify(header));
  if (pad8) h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]); // the format's optional padding
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([len, h, ...parts]));
  const offsets: Record<string, number> = {};
  for (const [k, v] of Object.entries(header)) offsets[k] = 8 + h.length + (v as { data_offsets: number[] }).data_offsets[0]!;
  return { file, offsets };
}

test('SafetensorsSource: keys across files (renamed, dropped), shapes, reads, F32 locations by offset', () => {
  const a = st({ 'x.w': ['F32', [2], f32(1, 2)], 'x.i': ['I64', [1], Buffer.alloc(8)], drop: ['F32', [1], f32(0)] });
  const b = st({ 'y.b': ['F32', [1, 3], f32(3, 4, 5)], 'x.w': ['F32', [1], f32(9)] });
  const fa = SafetensorsFile.open(a.file);
  const fb = SafetensorsFile.open(b.file);
  const src = new SafetensorsSource('the-origin', [fa, fb], (k) => (k === 'drop' ? undefined : `m.${k}`));
  assert.deepEqual([...src.keys()], ['m.x.w', 'm.x.i', 'm.y.b']);
  assert.equal(src.has('m.y.b'), true);
  assert.equal(src.has('m.drop'), false);
  assert.equal(src.has('y.b'), false);
  // The later file's tensor under the same key wins.
  assert.deepEqual(src.read('m.x.w'), { shape: [1], data: new Float32Array([9]) });
  assert.deepEqual(src.shape('m.y.b'), [1, 3]);
  assert.deepEqual(src.location('m.y.b'), { path: b.file, offset: b.offsets['y.b'] });
  assert.deepEqual(src.location('m.x.w'), { path: b.file, offset: b.offsets['x.w'] });
  assert.equal(src.location('m.x.i'), undefined); // integers are read as they are
  for (const fn of [() => src.read('zz'), () => src.shape('zz'), () => src.location('zz')]) refused(fn, 'the-origin [zz]: missing weight');
  // No renaming: stored names.
  const plain = new SafetensorsSource(a.file, [fa]);
  assert.deepEqual([...plain.keys()], ['x.w', 'x.i', 'drop']);
  assert.deepEqual(plain.location('x.w'), { path: a.file, offset: a.offsets['x.w'] });
  fa.close(); fb.close();
});

test('WeightsView: prefixes, shape checks with wildcards, graph tensors by file location, messages', () => {
  const { file, offsets } = st({ 'down.0.w': ['F32', [2, 2], f32(1, 2, 3, 4)], 'down.0.h': ['F16', [2], u16(0x3c00, 0xc000)], top: ['F32', [1], f32(7)] });
  setWeightMirrorFolder(undefined, 'memory');
  try {
    const vb = new WeightsView(new SafetensorsSource('org', [SafetensorsFile.open(file)]));
    assert.equal(vb.key('top'), 'top');
    const v0 = vb.pp('down').pp(0);
    assert.equal(v0.prefix, 'down.0');
    assert.equal(v0.key('w'), 'down.0.w');
    assert.equal(v0.has('w'), true);
    assert.equal(v0.has('top'), false);
    assert.equal(vb.has('top'), true);
    assert.deepEqual(v0.get('w', [2, 2]).data, new Float32Array([1, 2, 3, 4]));
    assert.deepEqual(v0.get('w', [null, 2]).data, new Float32Array([1, 2, 3, 4]));
    assert.deepEqual(v0.get('w').shape, [2, 2]);
    assert.deepEqual(v0.shape('w'), [2, 2]);
    refused(() => v0.get('w', [2, 3]), 'org [down.0.w]: weight has shape [2, 2] but the config expects [2, 3]');
    refused(() => v0.get('w', [null, 3]), 'org [down.0.w]: weight has shape [2, 2] but the config expects [?, 3]');
    refused(() => v0.get('w', [4]), 'org [down.0.w]: weight has shape [2, 2] but the config expects [4]');
    refused(() => v0.get('w', [2, 2, 1]), 'org [down.0.w]: weight has shape [2, 2] but the config expects [2, 2, 1]');
    refused(() => v0.get('b', [null, 4]), 'org [down.0.b]: missing weight (expected shape [?, 4])');
    refused(() => v0.get('b'), 'org [down.0.b]: missing weight');
    refused(() => v0.shape('b'), 'org [down.0.b]: missing weight');
    refused(() => v0.forGraph('b', [1]), 'org [down.0.b]: missing weight'); // the source's own lookup comes first
    // F32 as stored: referenced by file and offset, nothing read until load().
    const g = v0.forGraph('w', [2, null]);
    assert.deepEqual(g.shape, [2, 2]);
    assert.equal(g.data.length, 0);
    assert.equal(g.file!.path, file);
    assert.equal(g.file!.offset, offsets['down.0.w']);
    assert.deepEqual(g.file!.load(), new Float32Array([1, 2, 3, 4]));
    refused(() => v0.forGraph('w', [3, 2]), 'org [down.0.w]: weight has shape [2, 2] but the config expects [3, 2]');
    // F16 without a mirror folder ('memory'): converted in memory, no file.
    const h = v0.forGraph('h', [2]);
    assert.deepEqual(h, { shape: [2], data: new Float32Array([1, -2]) });
    refused(() => v0.forGraph('h', [3]), 'org [down.0.h]: weight has shape [2] but the config expects [3]');
    // A source without locations: always read.
    const bare: TensorSource = { origin: 'bare', keys: () => ['k'], has: (k) => k === 'k', shape: () => [1], read: () => ({ shape: [1], data: new Float32Array([5]) }) };
    assert.deepEqual(new WeightsView(bare).forGraph('k', [1]), { shape: [1], data: new Float32Array([5]) });
    assert.deepEqual(new WeightsView(bare, 'p').key('k'), 'p.k');
  } finally {
    setWeightMirrorFolder(undefined);
  }
});

test('F32 mirror: half and double tensors converted once into <folder>/<digest>.f32.safetensors; cache key is path, size, mtime', () => {
  const folder = path.join(tmp, `mirrors${seq++}`, 'nested');
  const { file } = st({ h: ['F16', [2, 2], u16(0x3c00, 0x4000, 0x0001, 0xfc00)], b: ['BF16', [], u16(0x3f80)], i: ['I64', [1], Buffer.alloc(8)], d: ['F64', [1], Buffer.from(new Float64Array([0.1]).buffer)], f: ['F32', [1], f32(2.5)] });
  setWeightMirrorFolder(folder);
  try {
    const src = SafetensorsFile.open(file);
    const m = f32Mirror(src)!;
    assert.equal(path.dirname(m.path), folder);
    assert.match(path.basename(m.path), /^[0-9a-f]{24}\.f32\.safetensors$/);
    assert.deepEqual(fs.readdirSync(folder), [path.basename(m.path)]); // no partial file left
    assert.deepEqual([...m.tensors.keys()], ['h', 'b', 'd', 'f']);
    for (const t of m.tensors.values()) assert.equal(t.dtype, 'F32');
    assert.deepEqual(m.readFloat32('h'), { shape: [2, 2], data: new Float32Array([1, 2, 2 ** -24, -Infinity]) });
    assert.deepEqual(m.readFloat32('b'), { shape: [1], data: new Float32Array([1]) }); // 0-dim stored as [1]
    assert.deepEqual(m.readFloat32('d'), { shape: [1], data: new Float32Array([Math.fround(0.1)]) });
    assert.deepEqual(m.metadata, { source: path.resolve(file) });
    assert.equal(f32Mirror(src), m, 'the same open mirror again');
    // Through SafetensorsSource.location: F16 / BF16 / F64 point into the mirror.
    const s = new SafetensorsSource(file, [src]);
    assert.deepEqual(s.location('h'), { path: m.path, offset: m.info('h').offset });
    assert.deepEqual(s.location('b'), { path: m.path, offset: m.info('b').offset });
    assert.deepEqual(s.location('d'), { path: m.path, offset: m.info('d').offset });
    assert.equal(s.location('i'), undefined);
    // Another path with the same bytes and mtime, the same path with another mtime or size: other mirrors.
    const copy = path.join(tmp, 'copy.safetensors');
    fs.copyFileSync(file, copy);
    const st0 = fs.statSync(file);
    fs.utimesSync(copy, st0.atime, st0.mtime);
    const names = new Set([path.basename(m.path)]);
    const c = SafetensorsFile.open(copy);
    names.add(path.basename(f32Mirror(c)!.path));
    fs.utimesSync(copy, st0.atime, new Date(st0.mtimeMs + 5000));
    names.add(path.basename(f32Mirror(c)!.path));
    fs.appendFileSync(copy, Buffer.alloc(1));
    fs.utimesSync(copy, st0.atime, new Date(st0.mtimeMs + 5000));
    names.add(path.basename(f32Mirror(c)!.path));
    assert.equal(names.size, 4);
    c.close();
    // A mirror file already in the folder (another process made it) is opened, not rewritten.
    const other = path.join(tmp, `other-folder${seq++}`);
    fs.mkdirSync(other);
    const planted = st({ h: ['F32', [1], f32(42)] }, path.join(other, path.basename(m.path))).file;
    setWeightMirrorFolder(other);
    const reused = f32Mirror(src)!;
    assert.equal(reused.path, planted);
    assert.deepEqual(reused.readFloat32('h').data, new Float32Array([42]));
    // 'memory': no mirror; 'temp' in a host whose engine reads no files (the browser): no mirror either.
    setWeightMirrorFolder(undefined, 'memory');
    assert.equal(f32Mirror(src), undefined);
    assert.equal(s.location('h'), undefined);
    setWeightMirrorFolder(undefined, 'temp');
    setHost({ engineReadsFiles: false });
    assert.equal(f32Mirror(src), undefined);
    setHost({ engineReadsFiles: true });
    src.close();
  } finally {
    setWeightMirrorFolder(undefined);
    setHost({ engineReadsFiles: true });
  }
});

/** The temp folder is made once per process: its first use is checked (a harness may run a test twice in one process). */
let firstTempUse = true;

test('F32 mirror without a folder: a temp folder of this process (stale ones of dead processes removed), removed at exit', () => {
  const tmpdir = os.tmpdir();
  const dead = (spawnSync('true').pid ?? spawnSync(process.execPath, ['-e', '0']).pid)!; // a process that has exited
  const staleDead = path.join(tmpdir, `visprompt-f32-${dead}-vptest`);
  const live = path.join(tmpdir, `visprompt-f32-${process.ppid}-vptest`);
  const mine = path.join(tmpdir, `visprompt-f32-${process.pid}-vptest`);
  const unrelated = path.join(tmpdir, `visprompt-f33-${dead}-vptest`);
  for (const d of [staleDead, live, mine, unrelated]) fs.mkdirSync(d, { recursive: true });
  const exitBefore = process.listeners('exit').length;
  const sigBefore = process.listenerCount('SIGHUP');
  const { file } = st({ h: ['F16', [1], u16(0x4000)] });
  setWeightMirrorFolder(undefined);
  try {
    const f = SafetensorsFile.open(file);
    const m = f32Mirror(f)!;
    const folder = path.dirname(m.path);
    assert.equal(path.dirname(folder), tmpdir);
    assert.match(path.basename(folder), new RegExp(`^visprompt-f32-${process.pid}-`));
    assert.deepEqual(m.readFloat32('h').data, new Float32Array([2]));
    if (!firstTempUse) return;
    firstTempUse = false;
    assert.equal(fs.existsSync(staleDead), false, 'a dead process\'s folder is removed');
    assert.equal(fs.existsSync(live), true, 'a live process\'s folder is kept');
    assert.equal(fs.existsSync(mine), true, 'this process\'s own folders are kept');
    assert.equal(fs.existsSync(unrelated), true, 'other names are not touched');
    // Removed at exit (and on SIGINT/SIGTERM/SIGHUP when nothing else handles them).
    assert.equal(process.listeners('exit').length, exitBefore + 1);
    if (sigBefore === 0) assert.equal(process.listenerCount('SIGHUP'), 1);
    const onExit = process.listeners('exit').at(-1) as () => void;
    onExit();
    assert.equal(fs.existsSync(folder), false);
    f.close();
  } finally {
    for (const d of [live, mine, unrelated]) fs.rmSync(d, { recursive: true, force: true });
  }
});

test('component folders: which weights file wins, pickles last, and the message when there is none', () => {
  const t = (v: number): Buffer => f32(v);
  const mk = (name: string, files: Record<string, number>): string => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const [f, v] of Object.entries(files)) {
      if (f.endsWith('.safetensors')) st({ w: ['F32', [1], t(v)] }, path.join(dir, f));
      else writeTorchZip(path.join(dir, f), { w: { dtype: 'F32', shape: [1], data: new Uint8Array(t(v)) } });
    }
    return dir;
  };
  const value = (dir: string): number => openComponentWeights(dir).read('w').data[0]!;
  assert.equal(value(mk('c1', { 'model.safetensors': 2, 'diffusion_pytorch_model.safetensors': 1, 'pytorch_model.bin': 3 })), 1);
  assert.equal(value(mk('c2', { 'model.safetensors': 2, 'a.safetensors': 4, 'pytorch_model.bin': 3 })), 2);
  assert.equal(value(mk('c3', { 'zz.safetensors': 4, 'diffusion_pytorch_model.bin': 3 })), 4);
  assert.equal(value(mk('c4', { 'pytorch_model.bin': 3, 'diffusion_pytorch_model.bin': 5, 'a.ckpt': 6 })), 5);
  assert.equal(value(mk('c5', { 'pytorch_model.bin': 3, 'a.ckpt': 6 })), 3);
  for (const ext of ['bin', 'ckpt', 'pt', 'pth']) assert.equal(value(mk(`c6${ext}`, { [`weights.${ext}`]: 7 })), 7);
  assert.equal(openComponentWeights(path.join(tmp, 'c1')).origin, path.join(tmp, 'c1', 'diffusion_pytorch_model.safetensors'));
  assert.equal(openComponentWeights(path.join(tmp, 'c3')).origin, path.join(tmp, 'c3', 'zz.safetensors'));
  assert.equal(openComponentWeights(path.join(tmp, 'c5')).origin, path.join(tmp, 'c5', 'pytorch_model.bin'));
  // A safetensors shard index beats a lone *.safetensors; a .bin index beats a .bin.
  const sh = mk('c7', { 'model-00001-of-00002.safetensors': 8, 'pytorch_model.bin': 3 });
  fs.writeFileSync(path.join(sh, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'model-00001-of-00002.safetensors' } }));
  assert.equal(openComponentWeights(sh).origin, path.join(sh, 'model.safetensors.index.json'));
  assert.equal(value(sh), 8);
  const bi = mk('c8', { 'pytorch_model-00001-of-00001.bin': 9, 'weights.pt': 6 });
  fs.writeFileSync(path.join(bi, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { w: 'pytorch_model-00001-of-00001.bin' } }));
  assert.equal(openComponentWeights(bi).origin, path.join(bi, 'pytorch_model.bin.index.json'));
  assert.equal(value(bi), 9);
  const none = mk('c9', {});
  fs.writeFileSync(path.join(none, 'config.json'), '{}');
  fs.writeFileSync(path.join(none, 'weights.binx'), 'x');
  const msg = (d: string): string => `${d}: no weights found (expected diffusion_pytorch_model.safetensors or model.safetensors, or a *.safetensors.index.json)`;
  refused(() => openComponentWeights(none), msg(none));
  const missing = path.join(tmp, 'no-such-folder');
  refused(() => openComponentWeights(missing), msg(missing));
});

test('safetensors shard index: every listed key must be in its shard; malformed indexes are one-line errors', () => {
  const dir = path.join(tmp, 'shards');
  const a = st({ p: ['F32', [1], f32(1)], q: ['F32', [2], f32(2, 3)] }, path.join(dir, 'a.safetensors')).file;
  st({ r: ['F32', [1], f32(4)] }, path.join(dir, 'b.safetensors'));
  const idx = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(idx, JSON.stringify({ metadata: {}, weight_map: { p: 'a.safetensors', r: 'b.safetensors', q: 'a.safetensors' } }));
  const s = openSharded(idx);
  assert.equal(s.origin, idx);
  assert.deepEqual([...s.keys()].sort(), ['p', 'q', 'r']);
  assert.deepEqual(s.read('q').data, new Float32Array([2, 3]));
  assert.deepEqual(s.read('r').data, new Float32Array([4]));
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { p: 'b.safetensors' } }));
  refused(() => openSharded(idx), `${path.join(dir, 'b.safetensors')} [p]: the shard index lists tensor p here but the file does not hold it`);
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { zz: 'a.safetensors' } }));
  refused(() => openSharded(idx), `${a} [zz]: the shard index lists tensor zz here but the file does not hold it`);
  for (const body of ['{}', '{"weight_map": 5}', '{"weight_map": null}', 'null']) {
    fs.writeFileSync(idx, body);
    refused(() => openSharded(idx), `${idx} [weight_map]: shard index has no weight_map object`);
  }
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { p: 'a.safetensors', q: 7 } }));
  refused(() => openSharded(idx), `${idx} [q]: shard 7 is not a file name in ${dir}`);
  fs.writeFileSync(idx, '{"weight_map": ');
  assert.throws(() => openSharded(idx), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${idx}: cannot read shard index (`) && !e.message.includes('\n'));
  const gone = path.join(dir, 'gone.json');
  assert.throws(() => openSharded(gone), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${gone}: cannot read shard index (ENOENT`));
});

test('torch .bin shard index and TensorFileSource: keys, locations (F32, contiguous, 4-byte aligned only), refusals', () => {
  const dir = path.join(tmp, `binshards${seq++}`);
  fs.mkdirSync(dir);
  const tz = (v: number[]): { dtype: 'F32'; shape: number[]; data: Uint8Array } => ({ dtype: 'F32', shape: [v.length], data: new Uint8Array(f32(...v)) });
  writeTorchZip(path.join(dir, 'one.bin'), { a: tz([1, 2]), h: { dtype: 'F16', shape: [1], data: new Uint8Array(u16(0x3c00)) } });
  writeTorchZip(path.join(dir, 'two.bin'), { b: tz([3]) });
  const idx = path.join(dir, 'pytorch_model.bin.index.json');
  fs.writeFileSync(idx, JSON.stringify({ weight_map: { a: 'one.bin', b: 'two.bin', h: 'one.bin' } }));
  const s = openShardedTensorFiles(idx);
  assert.equal(s.origin, idx);
  assert.deepEqual([...s.keys()], ['a', 'b', 'h']);
  assert.equal(s.has('b'), true);
  assert.equal(s.has('c'), false);
  assert.deepEqual(s.shape('a'), [2]);
  assert.deepEqual(s.read('b').data, new Float32Array([3]));
  const loc = s.location!('a')!;
  assert.equal(loc.path, path.join(dir, 'one.bin'));
  assert.deepEqual(fs.readFileSync(loc.path).subarray(loc.offset, loc.offset + 8), f32(1, 2));
  assert.equal(s.location!('h'), undefined);
  for (const fn of [() => s.shape('c'), () => s.read('c'), () => s.location!('c')]) refused(fn, `${idx} [c]: missing weight`);
  const cases: [unknown, string][] = [
    [{ a: 'sub/one.bin' }, `${idx} [a]: shard "sub/one.bin" is not a file name in ${dir}`],
    [{ a: 'sub\\one.bin' }, `${idx} [a]: shard "sub\\\\one.bin" is not a file name in ${dir}`],
    [{ a: 5 }, `${idx} [a]: shard 5 is not a file name in ${dir}`],
    [{ b: 'one.bin' }, `${path.join(dir, 'one.bin')} [b]: the shard index lists tensor b here but the file does not hold it`],
  ];
  for (const [map, message] of cases) {
    fs.writeFileSync(idx, JSON.stringify({ weight_map: map }));
    refused(() => openShardedTensorFiles(idx), message);
  }
  for (const body of ['{}', '{"weight_map": [1]}', '{"weight_map": "x"}', 'null']) {
    fs.writeFileSync(idx, body);
    refused(() => openShardedTensorFiles(idx), `${idx} [weight_map]: shard index has no weight_map object`);
  }
  fs.writeFileSync(idx, '{');
  assert.throws(() => openShardedTensorFiles(idx), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${idx}: cannot read shard index (`));
  // TensorFileSource over a safetensors file: a location only for F32 at a 4-byte aligned offset.
  const { file, offsets } = st({ u: ['U8', [1], Buffer.from([1])], odd: ['F32', [1], f32(5)], pad: ['U8', [3], Buffer.alloc(3)], even: ['F32', [1], f32(6)] }, undefined, true);
  assert.equal(offsets.odd! % 4 !== 0 && offsets.even! % 4 === 0, true, 'the layout puts one F32 off and one on a 4-byte boundary');
  const src = new TensorFileSource(openTensorFile(file), (k) => (k === 'pad' ? undefined : k.toUpperCase()));
  assert.deepEqual([...src.keys()], ['U', 'ODD', 'EVEN']);
  assert.equal(src.origin, file);
  assert.equal(src.location('ODD'), undefined);
  assert.deepEqual(src.location('EVEN'), { path: file, offset: offsets.even });
  assert.equal(src.location('U'), undefined);
  assert.deepEqual(src.read('ODD').data, new Float32Array([5]));
  assert.deepEqual(src.shape('U'), [1]);
  assert.equal(src.has('PAD'), false);
  refused(() => src.read('pad'), `${file} [pad]: missing weight`);
  const named = new TensorFileSource(openTensorFile(file), undefined, 'named-origin');
  assert.deepEqual([...named.keys()], ['u', 'odd', 'pad', 'even']);
  refused(() => named.shape('x'), 'named-origin [x]: missing weight');
  // openTensorSource of a zip: its storages are 64-byte aligned F32; isTorchPickle by content.
  const zs = openTensorSource(path.join(dir, 'two.bin'), (k) => `pre.${k}`);
  assert.deepEqual([...zs.keys()], ['pre.b']);
  assert.equal(zs.location('pre.b')!.offset % 64, 0);
  assert.equal(isTorchPickle(path.join(dir, 'two.bin')), true);
  assert.equal(isTorchPickle(file), false);
  assert.equal(isTorchPickle(path.join(dir, 'missing.bin')), false);
});
