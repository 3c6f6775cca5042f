/**
 * The persistent job store: one folder per job under --data/jobs/<id>/ holding job.json (the record:
 * inputs, seed, status, timings, versions, result files) beside the result files. Every write is
 * atomic (temp file + rename), so a crash leaves the old record or the new one, never half of one.
 * Shared by the embedded queue and by BullMQ workers on a shared --data folder.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { JobKind, JobRecordT, JobStatus } from './schemas.js';
import { HttpError } from './http-error.js';

const ID = /^[a-z0-9]{8,16}-[0-9a-f]{8}$/;
export const TERMINAL: readonly JobStatus[] = ['succeeded', 'failed', 'canceled'];

export function newJobId(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${crypto.randomBytes(4).toString('hex')}`;
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(3).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export class JobStore {
  readonly dir: string;
  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'jobs');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  isId(id: string): boolean { return ID.test(id); }

  /** The folder of a job (its results go here). */
  folder(id: string): string {
    if (!ID.test(id)) throw new HttpError(400, `id: ${JSON.stringify(id)} is not a job id`);
    return path.join(this.dir, id);
  }

  create(kind: JobKind, params: Record<string, unknown>, id = newJobId()): JobRecordT {
    const rec: JobRecordT = { id, kind, status: 'queued', params, createdAt: new Date().toISOString(), files: [], attempts: 0 };
    fs.mkdirSync(this.folder(id), { recursive: true });
    this.write(rec);
    return rec;
  }

  write(rec: JobRecordT): void {
    const dir = this.folder(rec.id);
    if (!fs.existsSync(dir)) return; // deleted meanwhile
    writeFileAtomic(path.join(dir, 'job.json'), JSON.stringify(rec, null, 2));
  }

  get(id: string): JobRecordT | undefined {
    try { return JSON.parse(fs.readFileSync(path.join(this.folder(id), 'job.json'), 'utf8')) as JobRecordT; } catch { return undefined; }
  }

  /** The record or a 404. */
  need(id: string): JobRecordT {
    this.folder(id); // a 400 for what is not a job id (e.g. "../x")
    const r = this.get(id);
    if (!r) throw new HttpError(404, `id: no job ${JSON.stringify(id)}`);
    return r;
  }

  update(id: string, patch: Partial<JobRecordT>): JobRecordT | undefined {
    const r = this.get(id);
    if (!r) return undefined;
    const next = { ...r, ...patch };
    this.write(next);
    return next;
  }

  /** Every job, oldest first. */
  list(): JobRecordT[] {
    let names: string[];
    try { names = fs.readdirSync(this.dir).filter((n) => ID.test(n)).sort(); } catch { return []; }
    return names.map((n) => this.get(n)).filter((r): r is JobRecordT => r !== undefined);
  }

  delete(id: string): void {
    fs.rmSync(this.folder(id), { recursive: true, force: true });
  }

  /** A result file of a job, or a 404; `name` must be one the record lists (no paths). */
  file(id: string, name: string): string {
    const rec = this.need(id);
    if (!rec.files.includes(name) || name.includes('/') || name.includes('\\') || name.startsWith('.')) {
      throw new HttpError(404, `name: job ${id} has no result file ${JSON.stringify(name)}`);
    }
    return path.join(this.folder(id), name);
  }
}
