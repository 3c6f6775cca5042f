/**
 * The queue on Redis (BullMQ): the server adds jobs, `visprompt worker` processes on any number of
 * machines take them. Job records and results live in the shared --data folder (every worker and the
 * server mount the same folder); Redis carries the queue, progress and cancel messages. A worker killed
 * mid-job loses its lock; after about --lock-ms another worker's stalled-job check puts the job back
 * in the queue and it runs again, writing the same result files (no duplicates).
 */
import os from 'node:os';
import { Queue, QueueEvents, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { InputError } from '../errors.js';
import type { JobEvents, ProgressUpdate } from './events.js';
import { executeJob, type ExecuteContext } from './execute.js';
import { HttpError } from './http-error.js';
import type { JobQueue } from './queue.js';
import type { JobKind, JobRecordT } from './schemas.js';
import { TERMINAL } from './store.js';

export const QUEUE_NAME = 'visprompt-jobs';
const CANCEL_CHANNEL = 'visprompt:cancel';
const ATTEMPTS = 3;

/** redis://[user:pass@]host:port[/db] as BullMQ connection options. */
export function connectionOf(url: string): ConnectionOptions {
  let u: URL;
  try { u = new URL(url); } catch { throw new InputError(`--redis must be a URL like redis://127.0.0.1:6379, got ${JSON.stringify(url)}`); }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new InputError(`--redis must start with redis:// or rediss://, got ${JSON.stringify(url)}`);
  return {
    host: u.hostname, port: Number(u.port || 6379), ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}), ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}), maxRetriesPerRequest: null,
  };
}

interface Payload { id: string }
/** The ioredis calls used for cancel messages (BullMQ's client type hides them). */
interface PubSub {
  publish(channel: string, message: string): Promise<number>;
  duplicate(): PubSub;
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', f: (channel: string, message: string) => void): void;
  disconnect(): void;
}

export class RedisQueue implements JobQueue {
  private readonly queue: Queue<Payload>;
  private readonly queueEvents: QueueEvents;
  private workers: { close(): Promise<void> } | undefined;

  constructor(url: string, private readonly ctx: ExecuteContext, private readonly events: JobEvents, private readonly inProcessWorkers: number, private readonly lockMs?: number) {
    const connection = connectionOf(url);
    this.queue = new Queue<Payload>(QUEUE_NAME, { connection });
    this.queueEvents = new QueueEvents(QUEUE_NAME, { connection });
    this.url = url;
  }
  private readonly url: string;

  async start(): Promise<void> {
    await this.queue.waitUntilReady();
    await this.queueEvents.waitUntilReady();
    const status = (id: string): void => { const r = this.ctx.store.get(id); if (r) this.events.status(r); };
    this.queueEvents.on('progress', ({ jobId, data }) => this.events.progress(jobId, data as unknown as ProgressUpdate));
    this.queueEvents.on('active', ({ jobId }) => status(jobId));
    this.queueEvents.on('completed', ({ jobId }) => status(jobId));
    this.queueEvents.on('failed', ({ jobId, failedReason }) => {
      const r = this.ctx.store.get(jobId);
      // Failed for good in BullMQ (e.g. stalled too often) while the record still says otherwise.
      if (r && !TERMINAL.includes(r.status)) {
        void this.queue.getJob(jobId).then(async (j) => {
          const state = j ? await j.getState() : 'failed';
          if (state === 'failed') {
            const f = this.ctx.store.update(jobId, { status: 'failed', error: failedReason, errorType: 'internal', finishedAt: new Date().toISOString() });
            if (f) this.events.status(f);
          } else status(jobId);
        });
      } else status(jobId);
    });
    if (this.inProcessWorkers > 0) this.workers = await startWorker(this.url, this.ctx, this.inProcessWorkers, this.lockMs);
  }

  async submit(kind: JobKind, params: Record<string, unknown>): Promise<JobRecordT> {
    const rec = this.ctx.store.create(kind, params);
    await this.queue.add(kind, { id: rec.id }, { jobId: rec.id, attempts: ATTEMPTS, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: 10_000, removeOnFail: 10_000 });
    this.events.status(rec);
    return rec;
  }

  async cancel(id: string): Promise<JobRecordT> {
    const rec = this.ctx.store.need(id);
    if (TERMINAL.includes(rec.status)) return rec;
    const job = await this.queue.getJob(id);
    const state = job ? await job.getState() : 'unknown';
    if (job && state !== 'active') {
      try { await job.remove(); } catch { /* taken by a worker meanwhile */ }
    }
    if (state === 'active' || (await this.queue.getJob(id).then((j) => j?.getState())) === 'active') {
      const client = (await this.queue.client) as unknown as PubSub;
      await client.publish(CANCEL_CHANNEL, id);
      const timeout = new Promise<JobRecordT>((_, reject) => setTimeout(() => reject(new HttpError(504, `id: job ${id} did not stop within 30 s`)), 30_000).unref());
      return Promise.race([this.events.waitFor(id, () => this.ctx.store.get(id)), timeout]);
    }
    const r = this.ctx.store.update(id, { status: 'canceled', finishedAt: new Date().toISOString() })!;
    this.events.status(r);
    return r;
  }

  async remove(id: string): Promise<void> {
    const rec = this.ctx.store.need(id);
    if (!TERMINAL.includes(rec.status)) await this.cancel(id);
    try { await (await this.queue.getJob(id))?.remove(); } catch { /* already gone */ }
    this.ctx.store.delete(id);
  }

  async counts(): Promise<{ queued: number; running: number }> {
    const c = await this.queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active');
    return { queued: (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0), running: c.active ?? 0 };
  }

  async close(): Promise<void> {
    await this.workers?.close();
    await this.queueEvents.close();
    await this.queue.close();
  }
}

/** BullMQ workers in this process (`concurrency` jobs at once), canceled through a Redis channel. */
export async function startWorker(url: string, ctx: ExecuteContext, concurrency: number, lockMs = 30_000): Promise<{ close(): Promise<void> }> {
  const controllers = new Map<string, AbortController>();
  const name = `${os.hostname()}:${process.pid}`;
  const worker = new Worker<Payload>(QUEUE_NAME, async (job: Job<Payload>) => {
    const id = job.data.id;
    const ctl = new AbortController();
    controllers.set(id, ctl);
    try {
      const retryable = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      const rec = await executeJob({ ...ctx, worker: name }, id, ctl.signal, () => undefined, (p) => { void job.updateProgress(p as unknown as object); }, retryable);
      return { status: rec?.status ?? 'deleted' };
    } finally {
      controllers.delete(id);
    }
  }, { connection: connectionOf(url), concurrency, lockDuration: lockMs, stalledInterval: Math.max(1000, Math.floor(lockMs / 2)), maxStalledCount: 2 });
  worker.on('error', (e) => ctx.log?.(`worker: ${e.message}`));
  await worker.waitUntilReady();
  const sub = ((await worker.client) as unknown as PubSub).duplicate();
  await sub.subscribe(CANCEL_CHANNEL);
  sub.on('message', (_channel: string, id: string) => controllers.get(id)?.abort());
  return {
    close: async () => {
      sub.disconnect();
      await worker.close();
    },
  };
}
