/**
 * One attempt at a stored job: mark it running, run it with a timeout and a cancel signal, record the
 * outcome (files, seed, timings, versions, or the error) in its job.json. Shared by the embedded queue
 * and BullMQ workers.
 */
import os from 'node:os';
import { VispromptError } from '../errors.js';
import { HttpError } from './http-error.js';
import { progressTracker, type ProgressUpdate } from './events.js';
import type { ModelCache } from './models.js';
import { runJob, versions } from './runner.js';
import type { JobRecordT } from './schemas.js';
import type { JobStore } from './store.js';
import type { Uploads } from './uploads.js';

export interface ExecuteContext {
  store: JobStore;
  models: ModelCache;
  uploads: Uploads;
  /** Per-job time limit, ms (0: none). */
  timeoutMs: number;
  /** Names the process in the record (host:pid). */
  worker?: string;
  log?: (msg: string) => void;
}

/** A user's error (bad input, bad file): not worth retrying. */
export function isUserError(e: unknown): boolean {
  return e instanceof HttpError || e instanceof VispromptError || (e instanceof Error && /^(VispromptError|FileFormatError|InputError|HttpError)$/.test(e.name));
}

export class JobTimeout extends Error { override readonly name = 'JobTimeout'; }

/**
 * Run job `id` once. Returns the final record; throws only for an error worth a retry elsewhere
 * (when `retryable` says so), having recorded it.
 */
export async function executeJob(ctx: ExecuteContext, id: string, cancel: AbortSignal, onStatus: (r: JobRecordT) => void,
  onProgress: (p: ProgressUpdate) => void, retryable = false): Promise<JobRecordT | undefined> {
  const start = ctx.store.get(id);
  if (!start || start.status === 'canceled' || start.status === 'succeeded') return start;
  const startedAt = new Date();
  const running = ctx.store.update(id, {
    status: 'running', startedAt: startedAt.toISOString(), attempts: start.attempts + 1, error: undefined, errorType: undefined, progress: undefined,
    worker: ctx.worker ?? `${os.hostname()}:${process.pid}`,
  });
  if (!running) return undefined;
  onStatus(running);
  const timeout = new AbortController();
  const timer = ctx.timeoutMs > 0 ? setTimeout(() => timeout.abort(new JobTimeout(`timed out after ${ctx.timeoutMs / 1000} s (the server's per-job limit)`)), ctx.timeoutMs) : undefined;
  const signal = AbortSignal.any([cancel, timeout.signal]);
  const queueMs = startedAt.getTime() - new Date(start.createdAt).getTime();
  try {
    const r = await runJob(running.kind, running.params, {
      models: ctx.models, uploads: ctx.uploads, folder: ctx.store.folder(id), signal, onProgress: progressTracker(onProgress),
    });
    const done = ctx.store.update(id, {
      status: 'succeeded', files: r.files, ...(r.seed !== undefined ? { seed: r.seed } : {}), finishedAt: new Date().toISOString(),
      timings: { queueMs, runMs: Date.now() - startedAt.getTime() }, versions: versions(),
      ...(r.warnings.length ? { warnings: r.warnings } : {}),
    });
    if (done) onStatus(done);
    return done;
  } catch (e) {
    const canceled = cancel.aborted && !timeout.signal.aborted;
    const message = timeout.signal.aborted ? (timeout.signal.reason as Error).message : e instanceof Error ? e.message : String(e);
    const user = canceled || timeout.signal.aborted || isUserError(e);
    if (!user) ctx.log?.(`job ${id} failed: ${e instanceof Error ? e.stack : String(e)}`);
    const status = canceled ? 'canceled' : retryable && !user ? 'queued' : 'failed';
    const rec = ctx.store.update(id, {
      status, finishedAt: status === 'queued' ? undefined : new Date().toISOString(), ...(canceled ? {} : { error: message, errorType: timeout.signal.aborted ? 'timeout' as const : user ? 'input' as const : 'internal' as const }),
      timings: { queueMs, runMs: Date.now() - startedAt.getTime() }, versions: versions(),
    });
    if (rec) onStatus(rec);
    if (retryable && !user) throw e;
    return rec;
  } finally {
    clearTimeout(timer);
  }
}
