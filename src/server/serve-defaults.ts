/**
 * `serve` / `worker` defaults, apart from the server itself: the CLI registers the commands' flags with
 * them on every run, and loads the server (Fastify, the job runner, the whole library) only for `serve`.
 */
import os from 'node:os';
import type { ServeOptions } from './serve.js';

export const DEFAULT_SERVE: Omit<ServeOptions, 'models' | 'data'> = {
  host: '127.0.0.1', port: 7860, workers: 1, maxUploadBytes: 20 * 2 ** 20, maxImageSide: 4096, jobTimeoutMs: 3600_000, rateLimit: 600,
  modelMemoryBytes: Math.floor(os.totalmem() / 2),
};
