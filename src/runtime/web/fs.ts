/**
 * `node:fs` for the browser build: a read-only file system over the File objects the user picked
 * (a diffusers folder through <input webkitdirectory> or the File System Access API, or one
 * checkpoint file). The library's readers (safetensors headers, positioned tensor reads, configs,
 * tokenizer files) run unchanged on it. Reads are synchronous, as the readers expect: each one reads
 * just its byte range with Blob.slice through FileReaderSync, which exists in dedicated workers, so
 * the pipelines run in a worker and a file is never read whole into memory.
 */

/** What a mounted file needs: a Blob (File) is one. */
export interface BlobLike {
  readonly size: number;
  readonly lastModified?: number;
  slice(start?: number, end?: number): Blob;
}

/** Reads bytes [start, end) of a blob synchronously (FileReaderSync in a worker; injectable for tests). */
export type SliceReader = (blob: BlobLike, start: number, end: number) => Uint8Array;

interface FileSyncReader { readAsArrayBuffer(b: Blob): ArrayBuffer }
type FileSyncReaderClass = new () => FileSyncReader;

const defaultReader: SliceReader = (blob, start, end) => {
  const FRS = (globalThis as { FileReaderSync?: FileSyncReaderClass }).FileReaderSync;
  if (!FRS) throw fsError('ENOTSUP', 'read', 'synchronous file reads need a dedicated worker (FileReaderSync)');
  return new Uint8Array(new FRS().readAsArrayBuffer(blob.slice(start, end)));
};

let readSlice: SliceReader = defaultReader;
const files = new Map<string, BlobLike>();
const dirs = new Set<string>(['/']);
const open = new Map<number, { path: string; blob: BlobLike }>();
let nextFd = 3;

function norm(p: string): string {
  const parts: string[] = [];
  for (const s of String(p).split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') parts.pop(); else parts.push(s);
  }
  return `/${parts.join('/')}`;
}

function fsError(code: string, syscall: string, p: string): Error & { code: string } {
  const e = new Error(`${code}: ${syscall} '${p}'`) as Error & { code: string; syscall: string; path: string };
  e.code = code; e.syscall = syscall; e.path = p;
  return e;
}

/** Make `entries` readable at `root/<relative path>` (absolute virtual paths; folders are implied). */
export function mount(root: string, entries: Iterable<{ path: string; blob: BlobLike }>): void {
  for (const { path, blob } of entries) {
    const p = norm(`${root}/${path}`);
    files.set(p, blob);
    for (let d = p.slice(0, p.lastIndexOf('/')) || '/'; ; d = d.slice(0, d.lastIndexOf('/')) || '/') {
      dirs.add(d);
      if (d === '/') break;
    }
  }
}

/** Forget everything under `root` (a new folder picked). */
export function unmount(root: string): void {
  const r = norm(root);
  const under = (p: string): boolean => p === r || p.startsWith(`${r}/`);
  for (const p of [...files.keys()]) if (under(p)) files.delete(p);
  for (const d of [...dirs]) if (under(d) && d !== '/') dirs.delete(d);
}

export function setSliceReader(r: SliceReader | undefined): void { readSlice = r ?? defaultReader; }

class Stats {
  constructor(private readonly dir: boolean, readonly size: number, readonly mtimeMs: number) {}
  isDirectory(): boolean { return this.dir; }
  isFile(): boolean { return !this.dir; }
}

export function existsSync(p: string): boolean { const n = norm(p); return files.has(n) || dirs.has(n); }

export function statSync(p: string): Stats {
  const n = norm(p);
  const f = files.get(n);
  if (f) return new Stats(false, f.size, f.lastModified ?? 0);
  if (dirs.has(n)) return new Stats(true, 0, 0);
  throw fsError('ENOENT', 'stat', p);
}

export function readdirSync(p: string): string[] {
  const n = norm(p);
  if (!dirs.has(n)) throw fsError(files.has(n) ? 'ENOTDIR' : 'ENOENT', 'scandir', p);
  const prefix = n === '/' ? '/' : `${n}/`;
  const names = new Set<string>();
  for (const q of [...files.keys(), ...dirs]) {
    if (q.startsWith(prefix) && q.length > prefix.length) names.add(q.slice(prefix.length).split('/')[0]!);
  }
  return [...names].sort();
}

export function openSync(p: string, flags: string = 'r'): number {
  if (flags !== 'r') throw fsError('EROFS', 'open', p);
  const n = norm(p);
  const blob = files.get(n);
  if (!blob) throw fsError(dirs.has(n) ? 'EISDIR' : 'ENOENT', 'open', p);
  const fd = nextFd++;
  open.set(fd, { path: n, blob });
  return fd;
}

function handle(fd: number): { path: string; blob: BlobLike } {
  const h = open.get(fd);
  if (!h) throw fsError('EBADF', 'read', String(fd));
  return h;
}

export function fstatSync(fd: number): Stats { return statSync(handle(fd).path); }

/** Positioned read of `length` bytes at `position` into `buffer[offset..]`; returns the bytes read (0 at the end). */
export function readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | bigint | null): number {
  const { blob } = handle(fd);
  const start = Number(position ?? 0);
  const end = Math.min(blob.size, start + length);
  if (end <= start) return 0;
  const bytes = readSlice(blob, start, end);
  buffer.set(bytes, offset);
  return bytes.byteLength;
}

export function closeSync(fd: number): void { open.delete(fd); }

export function readFileSync(p: string, options?: BufferEncoding | { encoding?: BufferEncoding | null }): Buffer | string {
  const n = norm(p);
  const blob = files.get(n);
  if (!blob) throw fsError(dirs.has(n) ? 'EISDIR' : 'ENOENT', 'open', p);
  const bytes = Buffer.from(readSlice(blob, 0, blob.size));
  const enc = typeof options === 'string' ? options : options?.encoding;
  return enc ? bytes.toString(enc) : bytes;
}

// Nothing is written in the browser (no graph cache, no weight mirrors): writes fail like a read-only disk.
const readOnly = (syscall: string) => (p: unknown): never => { throw fsError('EROFS', syscall, String(p)); };
export const writeFileSync = readOnly('write');
export const mkdirSync = readOnly('mkdir');
export const renameSync = readOnly('rename');
export const rmSync = readOnly('rm');
export const writeSync = readOnly('write');
export const ftruncateSync = readOnly('ftruncate');
export const createReadStream = readOnly('open');
export const createWriteStream = readOnly('open');

const fs = {
  existsSync, statSync, readdirSync, openSync, fstatSync, readSync, closeSync, readFileSync,
  writeFileSync, mkdirSync, renameSync, rmSync, writeSync, ftruncateSync, createReadStream, createWriteStream,
  promises: {},
};
export default fs;
