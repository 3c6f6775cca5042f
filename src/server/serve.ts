/**
 * `visprompt serve` and `visprompt worker` as library functions: wire the models cache, the job store,
 * uploads, the queue (embedded, or BullMQ on Redis) and the HTTP server.
 */
import path from 'node:path';
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { configureEngine } from '../graph/session.js';
import { InputError } from '../errors.js';
import { buildServer } from './app.js';
export { DEFAULT_WEB_ROOT } from './app.js';
import { JobEvents } from './events.js';
import type { ExecuteContext } from './execute.js';
import { ModelCache } from './models.js';
import { EmbeddedQueue, type JobQueue } from './queue.js';
import { JobStore } from './store.js';
import { Uploads } from './uploads.js';
import { DEFAULT_SERVE } from './serve-defaults.js';

export interface ServeOptions {
  host: string;
  port: number;
  models: string;
  data: string;
  redis?: string;
  /** Jobs run at once in this process (embedded), or in-process BullMQ workers (0: none, a pure front end). */
  workers: number;
  token?: string;
  maxUploadBytes: number;
  maxImageSide: number;
  jobTimeoutMs: number;
  rateLimit: number;
  cors?: string;
  modelMemoryBytes: number;
  /** BullMQ lock duration (a killed worker's job is retried after about this long). */
  lockMs?: number;
  log?: (msg: string) => void;
}

export { DEFAULT_SERVE };

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export interface Running { app: FastifyInstance; url: string; queue: JobQueue; close(): Promise<void> }

function common(o: { models: string; data: string; maxUploadBytes: number; maxImageSide: number; jobTimeoutMs: number; modelMemoryBytes: number; log?: (m: string) => void }): ExecuteContext {
  if (!fs.existsSync(o.models) || !fs.statSync(o.models).isDirectory()) throw new InputError(`--models ${o.models}: not a folder`);
  fs.mkdirSync(o.data, { recursive: true });
  // Keep compiled sessions between jobs (the CLI releases them after each phase); the model LRU bounds memory.
  configureEngine({ lowMemory: false });
  return {
    store: new JobStore(o.data),
    models: new ModelCache(path.resolve(o.models), o.modelMemoryBytes),
    uploads: new Uploads(o.data, { maxBytes: o.maxUploadBytes, maxSide: o.maxImageSide }),
    timeoutMs: o.jobTimeoutMs,
    log: o.log,
  };
}

export async function serve(o: ServeOptions): Promise<Running> {
  if (!isLoopback(o.host) && !o.token) throw new InputError(`--host ${o.host} is reachable from other machines: give --token T (clients send "Authorization: Bearer T")`);
  const ctx = common(o);
  const events = new JobEvents();
  let queue: JobQueue;
  if (o.redis) {
    const { RedisQueue } = await import('./redis.js');
    queue = new RedisQueue(o.redis, ctx, events, o.workers, o.lockMs);
  } else {
    queue = new EmbeddedQueue(ctx, events, Math.max(1, o.workers));
  }
  await queue.start();
  const app = await buildServer({
    models: ctx.models, store: ctx.store, uploads: ctx.uploads, queue, events, token: o.token, rateLimit: o.rateLimit, corsOrigin: o.cors,
    bodyLimit: Math.ceil(o.maxUploadBytes * 1.4) + 65536, // base64 inflates by 4/3
  });
  const address = await app.listen({ host: o.host, port: o.port });
  return { app, url: address, queue, close: async () => { await app.close(); await queue.close(); } };
}

export interface WorkerOptions {
  redis: string; models: string; data: string; concurrency: number; jobTimeoutMs: number; modelMemoryBytes: number; lockMs?: number;
  log?: (msg: string) => void;
}

/** A BullMQ worker process: takes jobs from Redis, writes results to the shared --data folder. */
export async function work(o: WorkerOptions): Promise<{ close(): Promise<void> }> {
  const ctx = common({ ...o, maxUploadBytes: DEFAULT_SERVE.maxUploadBytes, maxImageSide: DEFAULT_SERVE.maxImageSide });
  const { startWorker } = await import('./redis.js');
  return startWorker(o.redis, ctx, o.concurrency, o.lockMs);
}
