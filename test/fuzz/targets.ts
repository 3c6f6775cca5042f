/**
 * Fuzz targets (fast-check): the safetensors parser, the torch checkpoint reader (zip and legacy files),
 * the pickle machine on its own, the CLIP tokenizer and the image reader. Inputs are valid seed files
 * mutated (bytes set, bits flipped, integers overwritten with boundary values, truncation, insertion,
 * deletion, copied chunks), random opcode streams, and arbitrary unicode text. A run passes when the
 * parser returns or throws a VispromptError; any other exception (TypeError, RangeError, ...) is a
 * finding, and so is a single input that takes longer than SLOW_MS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import { VispromptError } from '../../src/errors.js';
import { CLIPTokenizer } from '../../src/io/clip-tokenizer.js';
import { parsePNGText, readImageRGB } from '../../src/io/image.js';
import { PyStorage, PyTuple, unpickle, type PyValue } from '../../src/io/pickle.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { openTensorFile, type TensorFile } from '../../src/io/tensor-file.js';
import { TorchCheckpointFile } from '../../src/io/torch-checkpoint.js';
import { FIXTURES, goldenPath, modelDir } from '../helpers.js';
import { op, writePickleZip, writeTorchLegacy, writeTorchZip } from '../torch-writer.js';

/** One input slower than this is reported (a hang, or quadratic behaviour). */
export const SLOW_MS = 2000;

export interface FuzzTarget {
  readonly name: string;
  readonly arbitrary: fc.Arbitrary<Uint8Array | string>;
  /** Resolves when the input was handled (parsed or refused with a VispromptError). */
  run(input: Uint8Array | string): void | Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Mutations

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'int'; at: number; width: 1 | 2 | 4 | 8; value: bigint; big: boolean }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'copy'; from: number; at: number; len: number };

const BOUNDARY = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n];

/** Positions anywhere in the input (fc.nat alone favours small numbers, the first bytes). */
const POS = fc.noBias(fc.nat());

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: POS, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('flip' as const), at: POS, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('int' as const), at: POS, width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), value: fc.constantFrom(...BOUNDARY), big: fc.boolean() }),
  fc.record({ kind: fc.constant('truncate' as const), at: POS }),
  fc.record({ kind: fc.constant('delete' as const), at: POS, len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: POS, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('copy' as const), from: POS, at: POS, len: fc.integer({ min: 1, max: 256 }) }),
);

export function mutate(seed: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case 'set': if (at < b.length) b[at] = m.value; break;
      case 'flip': if (at < b.length) b[at]! ^= 1 << m.bit; break;
      case 'int': {
        if (at + m.width > b.length) break;
        const v = m.value & ((1n << BigInt(8 * m.width)) - 1n);
        for (let i = 0; i < m.width; i++) b[m.big ? at + m.width - 1 - i : at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
        break;
      }
      case 'truncate': b = b.subarray(0, at); break;
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]); break;
      case 'insert': b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]); break;
      case 'copy': {
        const from = b.length === 0 ? 0 : m.from % b.length;
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + m.len), b.subarray(at)]);
        break;
      }
    }
  }
  return new Uint8Array(b);
}

function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 0, maxLength: 8 })).map(([s, ms]) => mutate(s, ms));
}

/** Random streams of pickle opcodes with plausible arguments (explores the machine past the first bad byte). */
const OPCODES = [0x28, 0x2e, 0x30, 0x31, 0x32, 0x4a, 0x4b, 0x4d, 0x4e, 0x51, 0x52, 0x58, 0x5d, 0x61, 0x62, 0x63, 0x65, 0x68, 0x6a, 0x71, 0x72, 0x73, 0x74, 0x29, 0x75,
  0x7d, 0x47, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x42, 0x43, 0x54, 0x55, 0x93, 0x94, 0x95, 0x81, 0x69, 0x64, 0x6c];
const GLOBALS = [['collections', 'OrderedDict'], ['torch._utils', '_rebuild_tensor_v2'], ['torch._utils', '_rebuild_tensor'], ['torch._utils', '_rebuild_parameter'],
  ['torch', 'Size'], ['torch', 'FloatStorage'], ['torch', 'HalfStorage'], ['torch', 'UntypedStorage'], ['posix', 'system'], ['builtins', 'eval']] as const;
const opcodeChunk: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(...OPCODES).map((o) => Uint8Array.of(o)),
  fc.tuple(fc.constantFrom(0x4b, 0x68, 0x71), fc.integer({ min: 0, max: 8 })).map(([o, i]) => Uint8Array.of(o, i)),
  fc.integer({ min: -3, max: 1000 }).map((n) => new Uint8Array(op.int(n))),
  fc.constantFrom('storage', 'cpu', '0', '1', 'state_dict', 'a.weight', '').map((s) => new Uint8Array(op.str(s))),
  fc.constantFrom(...GLOBALS).map(([m, n]) => new Uint8Array(op.global(m, n))),
);
const opcodeStream: fc.Arbitrary<Uint8Array> = fc.array(opcodeChunk, { maxLength: 60 }).map((cs) => new Uint8Array(Buffer.concat([Buffer.from([0x80, 2]), ...cs, Buffer.from('.')])));

// ---------------------------------------------------------------------------------------------------
// Seeds (small valid files, made once per process)

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-fuzz-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
function tmpFile(bytes: Uint8Array, ext: string): string {
  const p = path.join(tmp, `in-${process.pid}-${counter++ % 4}${ext}`);
  fs.writeFileSync(p, bytes);
  return p;
}

const f32 = (xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);
const SMALL = {
  'state.w': { dtype: 'F32' as const, shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
  'state.h': { dtype: 'F16' as const, shape: [2], data: new Uint8Array([0, 0x3c, 0, 0xc0]) },
  'state.i': { dtype: 'I64' as const, shape: [2], data: new Uint8Array(new BigInt64Array([3n, -4n]).buffer) },
  'state.b': { dtype: 'BOOL' as const, shape: [3], data: new Uint8Array([1, 0, 1]) },
};

function seedsOnce<T>(make: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= make());
}

const torchSeeds = seedsOnce(() => {
  const zip = path.join(tmp, 'seed.pt');
  writeTorchZip(zip, SMALL, { wrap: true });
  const legacy = path.join(tmp, 'seed-legacy.pt');
  writeTorchLegacy(legacy, SMALL);
  const pickles = path.join(FIXTURES, 'models', 'tiny-pickles');
  return [fs.readFileSync(zip), fs.readFileSync(legacy), fs.readFileSync(path.join(pickles, 'legacy.pt')), fs.readFileSync(path.join(pickles, 'malicious.ckpt'))].map((b) => new Uint8Array(b));
});

/** The object pickles of the seed files (legacy.pt's: BUILD, Parameter, views, every dtype). */
const pickleSeeds = seedsOnce(() => {
  const legacy = fs.readFileSync(path.join(FIXTURES, 'models', 'tiny-pickles', 'legacy.pt'));
  const obj = legacy.subarray(137, 2122); // offsets of tensors.json's legacy layout
  torchSeeds(); // writes seed.pt
  const small = fs.readFileSync(path.join(tmp, 'seed.pt'));
  const start = small.indexOf(Buffer.from([0x80, 2]));
  const end = small.indexOf(Buffer.from('.PK'), start);
  return [new Uint8Array(obj), new Uint8Array(small.subarray(start, end + 1))];
});

const safetensorsSeeds = seedsOnce(() => {
  const p = path.join(tmp, 'seed.safetensors');
  writeSafetensors(p, { a: { shape: [2, 3], data: new Float32Array(6).fill(0.5) }, b: { shape: [4], data: new Uint8Array([1, 2, 3, 4]) }, c: { shape: [2], data: new BigInt64Array([5n, 6n]) } }, { note: 'seed' });
  const hdr = (h: object, data: Uint8Array): Uint8Array => {
    const j = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(j.length));
    return new Uint8Array(Buffer.concat([len, j, data]));
  };
  return [new Uint8Array(fs.readFileSync(p)),
    hdr({ h: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 8] }, z: { dtype: 'BF16', shape: [0], data_offsets: [8, 8] }, s: { dtype: 'F64', shape: [], data_offsets: [8, 16] } }, new Uint8Array(16))];
});

const imageSeeds = seedsOnce(async () => {
  const png = fs.readFileSync(goldenPath('tiny-sd15', 'image_encoder_input_0.png'));
  const img = sharp(png);
  const [jpeg, webp, gif, png16] = await Promise.all([
    img.clone().resize(24, 16).jpeg().toBuffer(), img.clone().resize(16, 16).webp().toBuffer(), img.clone().resize(8, 8).gif().toBuffer(),
    sharp(png).resize(8, 8).grayscale().toColourspace('grey16').png().toBuffer(),
  ]);
  const small = await img.clone().resize(8, 6).png().toBuffer();
  return [small, jpeg, webp, gif, png16].map((b) => new Uint8Array(b));
});

/** safetensors files with generated headers: odd dtypes, shapes, offsets and metadata (the JSON parses, the checks must hold). */
const dim = fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constantFrom(-1, 0.5, 2 ** 31, 2 ** 53, 1e300, '3', null));
const headerEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'), fc.constantFrom('F8_E4M3', '', 'f32', 'toString', '__proto__')),
  shape: fc.oneof(fc.array(dim, { maxLength: 4 }), fc.constantFrom(null, 'x', {})),
  data_offsets: fc.oneof(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 80 })), fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 3 })),
});
const generatedSafetensors: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof({ weight: 5, arbitrary: headerEntry }, { weight: 1, arbitrary: fc.jsonValue() }), { maxKeys: 5 }),
  fc.integer({ min: 0, max: 96 }),
).map(([h, n]) => {
  const j = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(j.length));
  return new Uint8Array(Buffer.concat([len, j, Buffer.alloc(n, 0x3c)]));
});

// ---------------------------------------------------------------------------------------------------
// Targets

function readAll(f: TensorFile): void {
  for (const [name, info] of f.tensors) {
    if (info.byteLength > 1 << 26) continue; // a valid huge tensor: reading it proves nothing more
    if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16' || info.dtype === 'F64') f.readFloat32(name);
    else f.readInts(name);
    if ((info.shape[0] ?? 0) > 0 && (info.dtype === 'F32' || info.dtype === 'F16')) f.readRows(name, 0, 1);
  }
}

function targets(): FuzzTarget[] {
  const tokenizer = CLIPTokenizer.fromDir(path.join(modelDir('tiny-sd15'), 'tokenizer'));
  return [
    {
      name: 'safetensors',
      arbitrary: fc.oneof({ weight: 4, arbitrary: mutated(safetensorsSeeds()) }, { weight: 4, arbitrary: generatedSafetensors }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) }),
      run(input) {
        const f = SafetensorsFile.open(tmpFile(input as Uint8Array, '.safetensors'));
        try { readAll(f); } finally { f.close(); }
      },
    },
    {
      name: 'torch-file',
      arbitrary: fc.oneof(
        { weight: 4, arbitrary: mutated(torchSeeds()) },
        // A mutated pickle in an intact archive (reaches the unpickler and the storage checks).
        { weight: 4, arbitrary: fc.oneof(mutated(pickleSeeds()), opcodeStream).map((pkl) => { const p = path.join(tmp, 'wrap.pt'); writePickleZip(p, pkl, { 0: new Uint8Array(64), 1: new Uint8Array(8) }); return new Uint8Array(fs.readFileSync(p)); }) },
      ),
      run(input) {
        const f = openTensorFile(tmpFile(input as Uint8Array, '.pt'));
        try {
          readAll(f);
          if (f instanceof TorchCheckpointFile) for (const e of f.entries) if (e.byteLength <= 1 << 26) f.bytesOf(e);
        } finally { f.close(); }
      },
    },
    {
      name: 'pickle',
      arbitrary: fc.oneof(mutated(pickleSeeds()), opcodeStream),
      run(input) {
        // Storages as torch's loader would name them (any key, 100 elements), so tensor views are built and checked.
        const persistentLoad = (pid: PyValue): PyValue => {
          if (!(pid instanceof PyTuple)) throw new VispromptError('pid');
          return new PyStorage(String(pid.items[2]), 'F32', 100, { offset: 0, nbytes: 400 });
        };
        unpickle(input as Uint8Array, { file: 'fuzz.pkl', persistentLoad });
      },
    },
    {
      name: 'tokenizer',
      arbitrary: fc.oneof(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.array(fc.constantFrom('a', ' ', 'photo', '<|startoftext|>', '<|endoftext|>', '!', '\u00e9', '\u{1F600}', '\n', '\t', '\'s', 'DON\'T', '123', '\u0301', '\uFEFF', '</w>'), { maxLength: 200 }).map((xs) => xs.join('')),
      ),
      run(input) {
        const e = tokenizer.encode(input as string);
        if (e.input_ids.length !== 77 || e.attention_mask.length !== 77) throw new Error(`encode gave ${e.input_ids.length} ids`);
        if (e.input_ids.some((id) => !Number.isInteger(id) || id < 0 || id > 49407)) throw new Error('token id out of the vocabulary');
      },
    },
  ];
}

/** Every target, the image reader's included. */
export async function allTargets(): Promise<FuzzTarget[]> {
  return [...targets(), await imageTarget()];
}

/** The image reader target (its seeds are encoded with sharp, asynchronously). */
async function imageTarget(): Promise<FuzzTarget> {
  const seeds = await imageSeeds();
  return {
    name: 'image',
    arbitrary: mutated(seeds),
    async run(input) {
      const bytes = input as Uint8Array;
      const p = tmpFile(bytes, '.img');
      try {
        parsePNGText(Buffer.from(bytes), p);
      } catch (e) {
        if (!(e instanceof VispromptError)) throw e;
      }
      const img = await readImageRGB(p);
      if (img.data.length !== img.width * img.height * 3) throw new Error(`image of ${img.width}x${img.height} has ${img.data.length} bytes`);
    },
  };
}

export interface FuzzReport {
  readonly target: string;
  readonly iterations: number;
  readonly ms: number;
  /** Inputs that failed (non-VispromptError or too slow), with what happened. */
  readonly findings: { input: Uint8Array | string; error: string }[];
}

/** Run one target for `ms` milliseconds (fast-check; no shrinking, every failing input is kept). */
export async function fuzz(target: FuzzTarget, ms: number, seed?: number, onFinding?: (f: { input: Uint8Array | string; error: string }) => void): Promise<FuzzReport> {
  const findings: { input: Uint8Array | string; error: string }[] = [];
  let iterations = 0;
  const started = Date.now();
  const property = fc.asyncProperty(target.arbitrary, async (input) => {
    iterations++;
    const t0 = Date.now();
    try {
      await target.run(input);
    } catch (e) {
      if (!(e instanceof VispromptError)) {
        const f = { input, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e) };
        findings.push(f);
        onFinding?.(f);
      }
    }
    const took = Date.now() - t0;
    if (took > SLOW_MS) {
      const f = { input, error: `slow input: ${took} ms` };
      findings.push(f);
      onFinding?.(f);
    }
    return true;
  });
  await fc.assert(property, { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, ...(seed !== undefined ? { seed } : {}) });
  return { target: target.name, iterations, ms: Date.now() - started, findings };
}
