/**
 * The benchmark's folder: every output is written to a temporary name and renamed, so a crash or
 * Ctrl-C leaves either the whole file or nothing; a unit of work (one configuration on one reference)
 * counts as done once its record file exists. A lock file keeps two runs out of one folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';

const TMP = '.tmp-';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}${TMP}${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 1)}\n`);
}

export function readJson<T>(file: string): T | undefined {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')) as T; } catch { return undefined; }
}

/** Remove temporaries a killed run left behind (under `dir`, recursively). */
export function removeStaleTemporaries(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += removeStaleTemporaries(p);
    else if (e.name.includes(TMP)) { fs.rmSync(p, { force: true }); n++; }
  }
  return n;
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Take OUT/.lock (pid inside); a lock of a dead process is taken over. Returns the release function. */
export function lockFolder(out: string): () => void {
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => { try { if (fs.readFileSync(file, 'utf8') === String(process.pid)) fs.rmSync(file); } catch { /* gone */ } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`--out ${out}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      const pid = Number(fs.readFileSync(file, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) throw new InputError(`--out ${out}: another benchmark (process ${pid}) is writing there`);
      fs.rmSync(file, { force: true });
    }
  }
  throw new InputError(`--out ${out}: cannot take the lock file ${file}`);
}
