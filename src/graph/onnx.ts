/**
 * ONNX ModelProto emission (protobuf wire format, written with protobufjs' Writer).
 * Field numbers follow onnx/onnx.proto. Large weights are marked `data_location = EXTERNAL` and
 * handed to ONNX Runtime as in-memory external data (one entry per tensor), so the proto stays
 * small whatever the model size and the weight bytes are never copied into it.
 */
import path from 'node:path';
import protobuf from 'protobufjs/minimal.js';
import type { AttrValue, ConstData, Graph, Value } from './ir.js';
import { ONNX_DTYPE } from './ops.js';
import { host } from '../runtime/host.js';

const { Writer } = protobuf;
type W = protobuf.Writer;

export interface OnnxModel {
  readonly proto: Uint8Array;
  /** External data: file names referenced by initializers and their bytes. */
  readonly externalData: { path: string; data: Uint8Array }[];
  /**
   * The folder whose files hold file-backed initializers (ONNX Runtime's
   * `session.model_external_initializers_file_folder_path`), and the files used there.
   */
  readonly fileFolder?: string;
  readonly files: readonly string[];
}

export const OPSET = 17;
const IR_VERSION = 8;

const LEN = 2, VARINT = 0, I32 = 5;
/** Bytes of non-file tensors that may go inline in the proto beside folder-read weights. */
const INLINE_LIMIT = 256 * 2 ** 20;
const tag = (field: number, wire: number): number => (field << 3) | wire;

function str(w: W, field: number, s: string): void { w.uint32(tag(field, LEN)).string(s); }
function msg(w: W, field: number, body: (w: W) => void): void { w.uint32(tag(field, LEN)).fork(); body(w); w.ldelim(); }

function writeShape(w: W, shape: readonly number[]): void {
  // TensorShapeProto.dim = 1; Dimension.dim_value = 1
  for (const d of shape) msg(w, 1, (x) => x.uint32(tag(1, VARINT)).int64(d));
}

function valueInfo(w: W, field: number, v: { name: string; shape: readonly number[]; dtype: Value['dtype'] }): void {
  msg(w, field, (x) => {
    str(x, 1, v.name);
    // TypeProto.tensor_type = 1 { elem_type = 1, shape = 2 }
    msg(x, 2, (t) => msg(t, 1, (tt) => {
      tt.uint32(tag(1, VARINT)).int32(ONNX_DTYPE[v.dtype]);
      msg(tt, 2, (s) => writeShape(s, v.shape));
    }));
  });
}

function bytesOf(d: ConstData): Uint8Array {
  return new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength);
}

function tensorProto(w: W, name: string, d: ConstData, externalPath?: string, offset = 0): void {
  for (const dim of d.shape) w.uint32(tag(1, VARINT)).int64(dim);
  w.uint32(tag(2, VARINT)).int32(ONNX_DTYPE[d.dtype]);
  if (name) str(w, 8, name);
  if (externalPath !== undefined) {
    // external_data = 13 (StringStringEntryProto key=1 value=2), data_location = 14 (EXTERNAL = 1)
    const entry = (k: string, v: string): void => msg(w, 13, (e) => { str(e, 1, k); str(e, 2, v); });
    entry('location', externalPath);
    entry('offset', String(offset));
    entry('length', String(d.file ? d.shape.reduce((p, x) => p * x, 1) * 4 : d.data.byteLength));
    w.uint32(tag(14, VARINT)).int32(1);
  } else {
    w.uint32(tag(9, LEN)).bytes(bytesOf(d)); // raw_data
  }
}

function attribute(w: W, name: string, a: AttrValue): void {
  // AttributeProto: name=1 f=2 i=3 s=4 t=5 floats=7 ints=8 type=20 (FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7)
  msg(w, 5, (x) => {
    str(x, 1, name);
    if (typeof a === 'number') {
      x.uint32(tag(3, VARINT)).int64(a);
      x.uint32(tag(20, VARINT)).int32(2);
    } else if (typeof a === 'string') {
      x.uint32(tag(4, LEN)).bytes(Buffer.from(a, 'utf8'));
      x.uint32(tag(20, VARINT)).int32(3);
    } else if (Array.isArray(a)) {
      for (const v of a) x.uint32(tag(8, VARINT)).int64(v);
      x.uint32(tag(20, VARINT)).int32(7);
    } else if ('float' in a) {
      x.uint32(tag(2, I32)).float(a.float);
      x.uint32(tag(20, VARINT)).int32(1);
    } else if ('floats' in a) {
      for (const v of a.floats) x.uint32(tag(7, I32)).float(v);
      x.uint32(tag(20, VARINT)).int32(6);
    } else {
      msg(x, 5, (t) => tensorProto(t, '', a.tensor));
      x.uint32(tag(20, VARINT)).int32(4);
    }
  });
}

/** Emit the graph. Outputs are exposed under their names through Identity nodes. */
export function toOnnx(g: Graph): OnnxModel {
  const w = Writer.create();
  const externalData: { path: string; data: Uint8Array }[] = [];
  // File-backed weights are read by ONNX Runtime from one folder (the one holding most of them, e.g. the
  // checkpoint's unet/); file-backed weights elsewhere (a ControlNet's) are loaded and passed in memory.
  const bytesPerFolder = new Map<string, number>();
  for (const init of g.initializers.values()) {
    if (!init.data.file) continue;
    const dir = path.dirname(path.resolve(init.data.file.path));
    bytesPerFolder.set(dir, (bytesPerFolder.get(dir) ?? 0) + init.data.shape.reduce((p, x) => p * x, 1) * 4);
  }
  // (In the browser the engine opens no files: everything file-backed is loaded and passed in memory.)
  let fileFolder: string | undefined = host().engineReadsFiles ? [...bytesPerFolder].sort((a, b) => b[1] - a[1])[0]?.[0] : undefined;
  // ONNX Runtime takes either an in-memory external-data table or a folder, not both: when the folder is
  // used, other tensors go inline in the proto (small constants, under INLINE_LIMIT); past that, everything
  // is passed in memory.
  let inlineOthers = false;
  if (fileFolder) {
    let others = 0;
    for (const init of g.initializers.values()) {
      const inFolder = init.data.file && path.dirname(path.resolve(init.data.file.path)) === fileFolder;
      if (!inFolder && init.external) others += init.data.file ? init.data.shape.reduce((p, x) => p * x, 1) * 4 : init.data.data.byteLength;
    }
    if (others > INLINE_LIMIT) fileFolder = undefined;
    else inlineOthers = true;
  }
  const files = new Set<string>();
  w.uint32(tag(1, VARINT)).int64(IR_VERSION);
  str(w, 2, 'visprompt');
  msg(w, 7, (gw) => {
    for (const n of g.nodes) {
      msg(gw, 1, (nw) => {
        for (const i of n.inputs) str(nw, 1, i);
        for (const o of n.outputs) str(nw, 2, o);
        str(nw, 4, n.op);
        for (const [k, v] of Object.entries(n.attrs)) attribute(nw, k, v);
        if (n.domain) str(nw, 7, n.domain);
      });
    }
    for (const o of g.outputs) {
      msg(gw, 1, (nw) => { str(nw, 1, o.value.name); str(nw, 2, o.name); str(nw, 4, 'Identity'); });
    }
    str(gw, 2, g.name);
    let k = 0;
    for (const [name, init] of g.initializers) {
      const file = init.data.file;
      if (file && path.dirname(path.resolve(file.path)) === fileFolder) {
        files.add(path.resolve(file.path));
        msg(gw, 5, (t) => tensorProto(t, name, init.data, path.basename(file.path), file.offset));
      } else if (file) {
        const data = file.load();
        const loaded = { dtype: init.data.dtype, shape: init.data.shape, data };
        if (inlineOthers) {
          msg(gw, 5, (t) => tensorProto(t, name, loaded));
        } else {
          const p = `w${k++}.bin`;
          externalData.push({ path: p, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
          msg(gw, 5, (t) => tensorProto(t, name, loaded, p));
        }
      } else if (init.external && !inlineOthers) {
        const path = `w${k++}.bin`;
        externalData.push({ path, data: bytesOf(init.data) });
        msg(gw, 5, (t) => tensorProto(t, name, init.data, path));
      } else {
        msg(gw, 5, (t) => tensorProto(t, name, init.data));
      }
    }
    for (const v of g.inputs) valueInfo(gw, 11, v);
    for (const o of g.outputs) valueInfo(gw, 12, { name: o.name, shape: o.value.shape, dtype: o.value.dtype });
  });
  msg(w, 8, (o) => { str(o, 1, ''); o.uint32(tag(2, VARINT)).int64(OPSET); });
  msg(w, 8, (o) => { str(o, 1, 'com.microsoft'); o.uint32(tag(2, VARINT)).int64(1); });
  return { proto: w.finish(), externalData, ...(fileFolder ? { fileFolder } : {}), files: [...files] };
}
