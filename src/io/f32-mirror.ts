/**
 * Float32 mirrors of F16/BF16 checkpoint files. ONNX Runtime can read weights straight from a file
 * only in the dtype the graph uses (float32), so with a mirror folder configured each half-precision
 * file is converted once, streamed tensor by tensor, into `<folder>/<digest>.f32.safetensors`; later
 * graphs (and later processes) reference the mirror by offset and the weights never pass through
 * JavaScript memory. Without a folder, half-precision weights are converted in memory as before.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, SafetensorsWriter } from './safetensors.js';

let folder: string | undefined;
const open = new Map<string, SafetensorsFile>();

export function setWeightMirrorFolder(dir: string | undefined): void {
  folder = dir;
}

const FLOAT = new Set(['F16', 'BF16', 'F64']);

/** The F32 mirror of `file` (made on first use), or undefined when no mirror folder is set. */
export function f32Mirror(file: SafetensorsFile): SafetensorsFile | undefined {
  if (!folder) return undefined;
  const st = fs.statSync(file.path);
  const digest = crypto.createHash('sha256').update(`${path.resolve(file.path)}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 24);
  const target = path.join(folder, `${digest}.f32.safetensors`);
  let mirror = open.get(target);
  if (mirror) return mirror;
  if (!fs.existsSync(target)) {
    fs.mkdirSync(folder, { recursive: true });
    const names = [...file.tensors.values()].filter((t) => t.dtype === 'F32' || FLOAT.has(t.dtype));
    const partial = `${target}.${process.pid}.partial`;
    const w = new SafetensorsWriter(partial, names.map((t) => ({ name: t.name, shape: t.shape.length ? t.shape : [1] })), { source: path.resolve(file.path) });
    for (const t of names) w.writeRows(t.name, 0, file.readFloat32(t.name).data);
    w.close();
    fs.renameSync(partial, target);
  }
  mirror = SafetensorsFile.open(target);
  open.set(target, mirror);
  return mirror;
}
