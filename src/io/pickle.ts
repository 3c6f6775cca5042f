/**
 * A restricted pickle reader for torch checkpoints, in the spirit of `torch.load(weights_only=True)`:
 * it decodes the opcodes torch.save writes (protocols 2-5) into plain data and NEVER imports or calls
 * anything. A GLOBAL is accepted only when it names one of the allow-listed torch/collections objects
 * below, and a REDUCE is interpreted (not executed) only for those; any other global, any other
 * opcode, and any length or count that does not fit the bytes actually present is refused with one
 * FileFormatError naming the file and the global/opcode.
 */
import { FileFormatError } from '../errors.js';
import type { DType } from './safetensors.js';

/** Python tuple (lists are plain arrays). */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** Python dict / collections.OrderedDict; keys kept with their Python value, in insertion order. */
export class PyDict {
  readonly entries = new Map<string, [PyValue, PyValue]>();
  /** Attributes set by BUILD (an OrderedDict's `_metadata`). */
  attributes: PyDict | undefined;
  constructor(readonly ordered: boolean) {}
  set(key: PyValue, value: PyValue, file: string): void {
    this.entries.set(dictKey(key, file), [key, value]);
  }
  /** The value under a string key. */
  get(key: string): PyValue | undefined { return this.entries.get(`s${key}`)?.[1]; }
}

/** An allow-listed global (never resolved to anything executable). */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string { return `${this.module}.${this.name}`; }
}

/** Where one storage's bytes lie in the file (shared by every storage object with the same key). */
export interface StorageLocation {
  /** Absolute file offset of the first byte (-1 while unknown: legacy files place data after the pickles). */
  offset: number;
  /** Bytes available to the storage. */
  nbytes: number;
}

/** A torch storage as named by a persistent id: typed elements at a file location. */
export class PyStorage {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number, readonly location: StorageLocation) {}
}

/** A tensor as `torch._utils._rebuild_tensor_v2` would build it: a strided view of a storage. */
export class PyTensor {
  constructor(
    readonly storage: PyStorage,
    /** In elements. */
    readonly storageOffset: number,
    readonly shape: readonly number[],
    /** In elements. */
    readonly stride: readonly number[],
    readonly parameter: boolean,
  ) {}
  get dtype(): DType { return this.storage.dtype; }
}

/** The data ended inside the pickle (a reader holding only a prefix of the file may retry with more). */
export class PickleTruncated extends FileFormatError {}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PyGlobal | PyStorage | PyTensor;

/** torch storage classes and the dtype of their elements. */
export const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};

export const DTYPE_SIZE: Readonly<Record<DType, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

type GlobalKind = 'ordered_dict' | 'rebuild_tensor_v2' | 'rebuild_tensor' | 'rebuild_parameter' | 'size' | 'storage';

/** The complete allow-list: everything else is refused at the GLOBAL opcode, before any use. */
const ALLOWED: ReadonlyMap<string, GlobalKind> = new Map<string, GlobalKind>([
  ['collections.OrderedDict', 'ordered_dict'],
  ['torch._utils._rebuild_tensor_v2', 'rebuild_tensor_v2'],
  ['torch._utils._rebuild_tensor', 'rebuild_tensor'],
  ['torch._utils._rebuild_parameter', 'rebuild_parameter'],
  ['torch.Size', 'size'],
  ['torch.UntypedStorage', 'storage'],
  ['torch.storage.UntypedStorage', 'storage'],
  ...Object.keys(STORAGE_DTYPES).map((n) => [`torch.${n}`, 'storage'] as [string, GlobalKind]),
]);

export const ALLOWED_GLOBALS: readonly string[] = [...ALLOWED.keys()];

/** Element dtype of an allow-listed storage class (UntypedStorage holds bytes). */
export function storageDType(g: PyGlobal): DType | undefined {
  if (ALLOWED.get(g.qualified) !== 'storage') return undefined;
  return STORAGE_DTYPES[g.name] ?? 'U8';
}

const MAX_DIMS = 64;
/** Longest accepted big-integer literal (torch's magic number takes 10 bytes). */
const MAX_LONG_BYTES = 64;
/** Longest `module\nname\n` line of a GLOBAL. */
const MAX_GLOBAL_LINE = 256;
/** Size budget of one dict key's canonical form (tuple keys can nest through the memo). */
const MAX_KEY_CHARS = 4096;

function dictKey(k: PyValue, file: string): string {
  let budget = MAX_KEY_CHARS;
  const walk = (v: PyValue, depth: number): string => {
    if (depth > 32 || budget <= 0) throw new FileFormatError(file, 'refused: a pickled dict key is nested too deeply or too large');
    let s: string;
    if (v === null) s = 'N';
    else if (typeof v === 'boolean') s = v ? 'n1' : 'n0';
    else if (typeof v === 'number' || typeof v === 'bigint') s = `n${String(v)}`;
    else if (typeof v === 'string') s = `s${v}`;
    else if (v instanceof Uint8Array) s = `b${Buffer.from(v).toString('latin1')}`;
    else if (v instanceof PyTuple) s = `t(${v.items.map((x) => walk(x, depth + 1)).join(',')})`;
    else throw new FileFormatError(file, `refused: unhashable ${kindOf(v)} used as a dict key`);
    budget -= s.length;
    return s;
  };
  return walk(k, 0);
}

export function kindOf(v: PyValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof PyGlobal) return `global ${v.qualified}`;
  if (v instanceof PyStorage) return 'storage';
  if (v instanceof PyTensor) return 'tensor';
  return typeof v === 'bigint' ? 'int' : typeof v;
}

/** Names of the protocol's opcodes that are refused (only those reach the refusal message). */
const OPCODE_NAMES: Record<number, string> = {
  0x46: 'FLOAT', 0x49: 'INT', 0x4c: 'LONG', 0x50: 'PERSID', 0x53: 'STRING', 0x56: 'UNICODE', 0x67: 'GET', 0x69: 'INST', 0x6f: 'OBJ',
  0x70: 'PUT', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

export interface UnpickleOptions {
  /** The file, for messages. */
  readonly file: string;
  /** Where the pickle sits (a zip member name), for messages. */
  readonly where?: string;
  /** BINPERSID: torch's storage references. Without it a persistent id is refused. */
  readonly persistentLoad?: (pid: PyValue) => PyValue;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/**
 * Decode one pickle starting at `start`; returns the value and the offset just past its STOP.
 * Nothing in the input is executed: globals are checked against the allow-list and REDUCE is
 * interpreted for those few callables only.
 */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): { value: PyValue; end: number } {
  const file = opts.file;
  const at = opts.where ? ` in ${opts.where}` : '';
  const fail = (msg: string): never => { throw new FileFormatError(file, `refused pickle${at}: ${msg}`); };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stack: StackItem[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let pos = start;

  const need = (n: number | bigint, what: string): number => {
    const left = buf.length - pos;
    if (typeof n === 'bigint' ? n > BigInt(left) : n > left) {
      throw new PickleTruncated(file, `refused pickle${at}: ${what} of ${String(n)} bytes at byte ${pos} runs past the end of the data (${left} bytes left; truncated or oversized length)`);
    }
    return Number(n);
  };
  const u8 = (): number => { need(1, 'argument'); return buf[pos++]!; };
  const u16 = (): number => { need(2, 'argument'); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = (): number => { need(4, 'argument'); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = (): number => { need(4, 'argument'); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64 = (): bigint => { need(8, 'argument'); const v = dv.getBigUint64(pos, true); pos += 8; return v; };
  const bytes = (n: number | bigint, what: string): Uint8Array => {
    const len = need(n, what);
    const b = buf.subarray(pos, pos + len);
    pos += len;
    return b;
  };
  const utf8 = (n: number | bigint, what: string): string => Buffer.from(bytes(n, what)).toString('utf8');
  const line = (what: string): string => {
    let end = pos;
    while (end < buf.length && end - pos < MAX_GLOBAL_LINE && buf[end] !== 0x0a) end++; // (a line of MAX bytes ends at pos + MAX)
    if (end >= buf.length) throw new PickleTruncated(file, `refused pickle${at}: ${what} at byte ${pos} runs past the end of the data (truncated)`);
    if (buf[end] !== 0x0a) fail(`${what} at byte ${pos} is not a newline-terminated line of at most ${MAX_GLOBAL_LINE} bytes`);
    const s = Buffer.from(buf.subarray(pos, end)).toString('utf8');
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) fail(`stack underflow at byte ${pos - 1}`);
    return v as PyValue;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail(`stack underflow at byte ${pos - 1}`);
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) return fail(`MARK missing at byte ${pos - 1}`);
    const items = stack.splice(m + 1) as PyValue[];
    stack.pop(); // the MARK itself
    return items;
  };
  const longOf = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED.has(q)) fail(`global '${q}' is not allowed (weights-only loading permits only tensors, storages and OrderedDict: ${ALLOWED_GLOBALS.filter((g) => !/Storage$/.test(g)).join(', ')}, torch.*Storage); nothing was executed`);
    return new PyGlobal(module, name);
  };
  const setItems = (d: PyValue, items: PyValue[]): void => {
    if (!(d instanceof PyDict)) fail(`SETITEM(S) on a ${kindOf(d)}, not a dict`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).set(items[i]!, items[i + 1]!, file);
  };
  const append = (l: PyValue, items: PyValue[]): void => {
    if (!Array.isArray(l)) fail(`APPEND(S) on a ${kindOf(l)}, not a list`);
    for (const x of items) (l as PyValue[]).push(x);
  };

  for (;;) {
    if (pos >= buf.length) throw new PickleTruncated(file, `refused pickle${at}: the data ends at byte ${pos} without a STOP opcode (truncated)`);
    const opPos = pos;
    const op = buf[pos++]!;
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p < 2 || p > 5) fail(`pickle protocol ${p} (torch checkpoints use 2-5)`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        const v = pop();
        return { value: v, end: pos };
      }
      case 0x28: marks.push(stack.length); stack.push(MARK); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1
        const n = u8();
        if (n > MAX_LONG_BYTES) fail(`integer literal of ${n} bytes at byte ${opPos} (at most ${MAX_LONG_BYTES})`);
        stack.push(longOf(bytes(n, 'LONG1')));
        break;
      }
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0 || n > MAX_LONG_BYTES) fail(`integer literal of ${n} bytes at byte ${opPos} (at most ${MAX_LONG_BYTES})`);
        stack.push(longOf(bytes(n, 'LONG4')));
        break;
      }
      case 0x47: { // BINFLOAT (big-endian)
        need(8, 'BINFLOAT');
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x58: stack.push(utf8(u32(), 'BINUNICODE string')); break;
      case 0x8c: stack.push(utf8(u8(), 'SHORT_BINUNICODE string')); break;
      case 0x8d: stack.push(utf8(u64(), 'BINUNICODE8 string')); break;
      // Python 2 str: bytes, which torch keys never are; decoded as latin-1 like pickle's encoding='latin1'.
      case 0x54: { const n = i32(); if (n < 0) fail(`negative BINSTRING length at byte ${opPos}`); stack.push(Buffer.from(bytes(n, 'BINSTRING')).toString('latin1')); break; }
      case 0x55: stack.push(Buffer.from(bytes(u8(), 'SHORT_BINSTRING')).toString('latin1')); break;
      case 0x42: stack.push(bytes(u32(), 'BINBYTES').slice()); break;
      case 0x43: stack.push(bytes(u8(), 'SHORT_BINBYTES').slice()); break;
      case 0x8e: stack.push(bytes(u64(), 'BINBYTES8').slice()); break;
      case 0x7d: stack.push(new PyDict(false)); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: { const a = pop(); stack.push(new PyTuple([a])); break; }
      case 0x86: { const b = pop(); const a = pop(); stack.push(new PyTuple([a, b])); break; }
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new PyTuple([a, b, c])); break; }
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const d = new PyDict(false); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET / LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} read before it was written (byte ${opPos})`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line('GLOBAL module');
        const name = line('GLOBAL name');
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL of a ${kindOf(module)} and a ${kindOf(name)} (byte ${opPos})`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail(`persistent id at byte ${opPos} outside a torch checkpoint`);
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args, fail, file));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict) || !obj.ordered || !(state instanceof PyDict)) fail(`BUILD (setting state) on a ${kindOf(obj)} with a ${kindOf(state)} (byte ${opPos}); only an OrderedDict's attributes are accepted`);
        (obj as PyDict).attributes = state as PyDict;
        break;
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ''} at byte ${opPos} is not allowed in a weights-only checkpoint`);
    }
  }
}

function ints(v: PyValue, what: string, fail: (m: string) => never): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : fail(`${what} is a ${kindOf(v)}, not a tuple of integers`);
  if (items.length > MAX_DIMS) fail(`${what} has ${items.length} dimensions (at most ${MAX_DIMS})`);
  return items.map((x) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) fail(`${what} holds ${typeof x === 'bigint' ? String(x) : kindOf(x)} (${String(x)}), not a non-negative integer`);
    return x as number;
  });
}

function argsOf(args: PyValue, name: string, min: number, max: number, fail: (m: string) => never): readonly PyValue[] {
  if (!(args instanceof PyTuple)) return fail(`${name} called with a ${kindOf(args)} instead of an argument tuple`);
  if (args.items.length < min || args.items.length > max) fail(`${name} called with ${args.items.length} arguments (expected ${min === max ? min : `${min}-${max}`})`);
  return args.items;
}

function emptyHooks(v: PyValue, name: string, fail: (m: string) => never): void {
  if (!(v === null || (v instanceof PyDict && v.entries.size === 0))) fail(`${name}: backward hooks must be empty, got ${kindOf(v)}`);
}

/** Build a strided tensor view after checking it stays inside its storage. */
export function makeTensor(storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, fail: (m: string) => never, parameter = false): PyTensor {
  if (!(storage instanceof PyStorage)) return fail(`tensor built on a ${kindOf(storage)}, not a storage`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return fail(`tensor storage offset ${String(offset)} is not a non-negative integer`);
  const shape = ints(size, 'tensor size', fail);
  const strides = ints(stride, 'tensor stride', fail);
  if (shape.length !== strides.length) fail(`tensor size [${shape.join(', ')}] and stride [${strides.join(', ')}] differ in length`);
  let numel = 1;
  let last = offset;
  for (let i = 0; i < shape.length; i++) {
    numel *= shape[i]!;
    last += Math.max(0, shape[i]! - 1) * strides[i]!;
  }
  if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last)) fail(`tensor size [${shape.join(', ')}] is too large`);
  if (numel > 0 && last >= storage.numel) {
    fail(`tensor [${shape.join(', ')}] with stride [${strides.join(', ')}] at offset ${offset} reaches element ${last} of storage '${storage.key}', which holds ${storage.numel}`);
  }
  return new PyTensor(storage, offset, shape, strides, parameter);
}

function reduce(fn: PyValue, args: PyValue, fail: (m: string) => never, file: string): PyValue {
  if (!(fn instanceof PyGlobal)) return fail(`REDUCE calls a ${kindOf(fn)}, not an allowed global`);
  const kind = ALLOWED.get(fn.qualified);
  const name = fn.qualified;
  switch (kind) {
    case 'ordered_dict': {
      const a = argsOf(args, name, 0, 1, fail);
      const d = new PyDict(true);
      if (a.length === 1) {
        const pairs = a[0] instanceof PyTuple ? a[0].items : Array.isArray(a[0]) ? a[0] : fail(`${name} called with a ${kindOf(a[0]!)}`);
        for (const p of pairs) {
          const kv = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : [];
          if (kv.length !== 2) fail(`${name} item is not a (key, value) pair`);
          d.set(kv[0]!, kv[1]!, file);
        }
      }
      return d;
    }
    case 'rebuild_tensor_v2': {
      const a = argsOf(args, name, 6, 7, fail);
      if (typeof a[4] !== 'boolean') fail(`${name}: requires_grad is a ${kindOf(a[4]!)}`);
      emptyHooks(a[5]!, name, fail);
      if (a.length === 7 && !(a[6] === null || a[6] instanceof PyDict)) fail(`${name}: metadata is a ${kindOf(a[6]!)}`);
      return makeTensor(a[0]!, a[1]!, a[2]!, a[3]!, fail);
    }
    case 'rebuild_tensor': {
      const a = argsOf(args, name, 4, 4, fail);
      return makeTensor(a[0]!, a[1]!, a[2]!, a[3]!, fail);
    }
    case 'rebuild_parameter': {
      const a = argsOf(args, name, 3, 3, fail);
      const t = a[0]!;
      if (!(t instanceof PyTensor)) return fail(`${name} of a ${kindOf(t)}, not a tensor`);
      if (typeof a[1] !== 'boolean') fail(`${name}: requires_grad is a ${kindOf(a[1]!)}`);
      emptyHooks(a[2]!, name, fail);
      return new PyTensor(t.storage, t.storageOffset, t.shape, t.stride, true);
    }
    case 'size': {
      const a = argsOf(args, name, 0, 1, fail);
      return new PyTuple(a.length ? ints(a[0]!, name, fail) : []);
    }
    default:
      return fail(`${name} is not callable in a weights-only checkpoint`);
  }
}
