/**
 * The embedded queue: jobs run in this process, `concurrency` at a time, in submission order. The job
 * store on disk is the queue's memory: on start, every job still queued or running (the server was
 * stopped or crashed mid-job) is queued again, so a restart loses nothing.
 */
import type { JobEvents } from './events.js';
import { executeJob, type ExecuteContext } from './execute.js';
import { HttpError } from './http-error.js';
import type { JobKind, JobRecordT } from './schemas.js';
import { TERMINAL } from './store.js';

/** What the HTTP layer needs of a queue (embedded or BullMQ). */
export interface JobQueue {
  start(): Promise<void>;
  submit(kind: JobKind, params: Record<string, unknown>): Promise<JobRecordT>;
  cancel(id: string): Promise<JobRecordT>;
  remove(id: string): Promise<void>;
  counts(): Promise<{ queued: number; running: number }>;
  close(): Promise<void>;
}

export class EmbeddedQueue implements JobQueue {
  private readonly pending: string[] = [];
  private readonly running = new Map<string, AbortController>();
  private closed = false;

  constructor(private readonly ctx: ExecuteContext, private readonly events: JobEvents, private readonly concurrency = 1) {}

  async start(): Promise<void> {
    for (const r of this.ctx.store.list()) {
      if (r.status === 'queued' || r.status === 'running') {
        if (r.status === 'running') this.ctx.store.update(r.id, { status: 'queued', progress: undefined });
        this.pending.push(r.id);
      }
    }
    if (this.pending.length) this.ctx.log?.(`re-queued ${this.pending.length} unfinished job(s)`);
    this.pump();
  }

  async submit(kind: JobKind, params: Record<string, unknown>): Promise<JobRecordT> {
    const rec = this.ctx.store.create(kind, params);
    this.pending.push(rec.id);
    this.events.status(rec);
    this.pump();
    return rec;
  }

  async cancel(id: string): Promise<JobRecordT> {
    const rec = this.ctx.store.need(id);
    const i = this.pending.indexOf(id);
    if (i >= 0) {
      this.pending.splice(i, 1);
      const r = this.ctx.store.update(id, { status: 'canceled', finishedAt: new Date().toISOString() })!;
      this.events.status(r);
      return r;
    }
    const ctl = this.running.get(id);
    if (ctl) {
      ctl.abort();
      return this.events.waitFor(id, () => this.ctx.store.get(id));
    }
    if (!TERMINAL.includes(rec.status)) throw new HttpError(409, `id: job ${id} is ${rec.status} and cannot be canceled now`);
    return rec;
  }

  async remove(id: string): Promise<void> {
    const rec = this.ctx.store.need(id);
    if (!TERMINAL.includes(rec.status)) await this.cancel(id);
    this.ctx.store.delete(id);
  }

  async counts(): Promise<{ queued: number; running: number }> {
    return { queued: this.pending.length, running: this.running.size };
  }

  async close(): Promise<void> {
    // Running jobs are not canceled: their records stay "running" and the next start re-queues them.
    this.closed = true;
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.pending.length > 0) {
      const id = this.pending.shift()!;
      const ctl = new AbortController();
      this.running.set(id, ctl);
      void executeJob(this.ctx, id, ctl.signal, (r) => this.events.status(r), (p) => this.events.progress(id, p))
        .catch((e: unknown) => this.ctx.log?.(`job ${id}: ${String(e)}`))
        .finally(() => { this.running.delete(id); this.pump(); });
    }
  }
}
