/**
 * Metric features cached on disk, keyed by the SHA-256 of the image file's bytes and the network
 * (its resolved path, size and modification time) and the metric, so that re-scoring a folder after
 * adding images only runs the network on the new ones.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function defaultCacheDir(): string {
  return process.env['VISPROMPT_EVAL_CACHE'] ?? path.join(os.homedir(), '.cache', 'visprompt', 'eval');
}

/** An identity for a network file or folder (path, size, mtime of each file in it). */
export function networkId(p: string): string {
  const h = crypto.createHash('sha256');
  const add = (f: string): void => { const s = fs.statSync(f); h.update(`${path.resolve(f)}:${s.size}:${s.mtimeMs}\n`); };
  if (fs.statSync(p).isDirectory()) for (const f of fs.readdirSync(p).sort()) { const q = path.join(p, f); if (fs.statSync(q).isFile()) add(q); }
  else add(p);
  return h.digest('hex').slice(0, 16);
}

export function fileHash(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export class FeatureCache {
  /** `dir` undefined: caching off. */
  constructor(readonly dir: string | undefined, readonly namespace: string) {}

  private file(hash: string, part: string): string | undefined {
    return this.dir ? path.join(this.dir, this.namespace, `${hash}.${part}.f32`) : undefined;
  }

  get(hash: string, part: string): Float32Array | undefined {
    const f = this.file(hash, part);
    if (!f || !fs.existsSync(f)) return undefined;
    const b = fs.readFileSync(f);
    if (b.length % 4 !== 0) return undefined;
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  }

  set(hash: string, part: string, data: Float32Array): void {
    const f = this.file(hash, part);
    if (!f) return;
    try {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      // write then rename: a crash never leaves a truncated entry behind
      const tmp = `${f}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      fs.renameSync(tmp, f);
    } catch { /* a cache that cannot be written is only slower */ }
  }
}
