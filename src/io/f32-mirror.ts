/**
 * Float32 mirrors of F16/BF16 checkpoint files. ONNX Runtime can read weights straight from a file
 * only in the dtype the graph uses (float32), so with a mirror folder configured each half-precision
 * file is converted once, streamed tensor by tensor, into `<folder>/<digest>.f32.safetensors`; later
 * graphs (and later processes) reference the mirror by offset and the weights never pass through
 * JavaScript memory. Without a folder the mirrors go to a folder of this process under the OS temp
 * folder, removed when the process exits (measured: peak RSS of the whole SD 1.5 pipeline from an F16
 * folder 2.26x the float32 weights when converted in memory, as an F32 folder's with the mirror);
 * `fallback: 'memory'` converts in memory instead (no disk use, double peak memory).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { host } from '../runtime/host.js';
import { SafetensorsFile, SafetensorsWriter } from './safetensors.js';

let folder: string | undefined;
let fallback: 'temp' | 'memory' = 'temp';
let tempFolder: string | undefined;
const open = new Map<string, SafetensorsFile>();

export function setWeightMirrorFolder(dir: string | undefined, whenUnset: 'temp' | 'memory' = 'temp'): void {
  folder = dir;
  fallback = whenUnset;
}

const TEMP_PREFIX = 'visprompt-f32-';

/** This process's temporary mirror folder (made on first use, removed at exit); undefined if it cannot be made. */
function processTempFolder(): string | undefined {
  if (tempFolder) return tempFolder;
  try {
    removeStaleTempFolders();
    tempFolder = fs.mkdtempSync(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
  } catch {
    return undefined; // no writable temp folder: convert in memory
  }
  const dir = tempFolder;
  const remove = (): void => { try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ } };
  process.once('exit', remove);
  // a signal's default action skips 'exit' handlers: remove the folder, then die of the same signal
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue; // the application handles it (and exits through 'exit')
    process.once(sig, () => { remove(); process.kill(process.pid, sig); });
  }
  return dir;
}

/** Temp mirror folders of processes that no longer exist (killed hard): delete them. */
function removeStaleTempFolders(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    const m = new RegExp(`^${TEMP_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
    }
  }
}

const FLOAT = new Set(['F16', 'BF16', 'F64']);

function mirrorFolder(): string | undefined {
  // (a host whose engine opens no files, the browser, gets everything in memory anyway)
  return folder ?? (fallback === 'temp' && host().engineReadsFiles ? processTempFolder() : undefined);
}

/** The F32 mirror of `file` (made on first use), or undefined when weights are to be converted in memory. */
export function f32Mirror(file: SafetensorsFile): SafetensorsFile | undefined {
  const folder = mirrorFolder();
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
