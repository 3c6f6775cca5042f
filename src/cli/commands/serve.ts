/** `serve` (HTTP API, job queue, web UI) and `worker` (BullMQ worker for `serve --redis`). */
import type { Command } from 'commander';
// The server (Fastify, the job runner and through it the whole library) loads only when serve/worker runs.
import { DEFAULT_SERVE } from '../../server/serve-defaults.js';
import { float, int } from '../parse.js';
import type { GlobalOptions } from '../main.js';

interface ServeFlags {
  host: string; port: number; models: string; data: string; redis?: string; workers: number; token?: string; maxUploadMb: number;
  maxImageSide: number; jobTimeout: number; rateLimit: number; cors?: string; modelMemoryMb?: number; lockMs: number;
}

const log = (m: string): void => { process.stderr.write(`${new Date().toISOString()} ${m}\n`); };

/** Stop cleanly on SIGINT/SIGTERM; unfinished jobs stay in the store and are re-queued on the next start. */
function onSignals(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) process.exit(1);
    closing = true;
    void close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export function registerServeCommands(program: Command, _globals: () => GlobalOptions): void {
  program.command('serve')
    .description('HTTP API with a job queue, live progress and a web UI (also an AUTOMATIC1111-compatible subset)')
    .option('--host <host>', 'address to bind (beyond loopback needs --token)', DEFAULT_SERVE.host)
    .option('--port <n>', 'port', int('--port', 0, 65535), DEFAULT_SERVE.port)
    .option('--models <dir>', 'folder of models (diffusers folders, single files, ControlNets, aligners, attribute networks)', 'models')
    .option('--data <dir>', 'folder for uploads, job records and results (survives restarts)', 'visprompt-data')
    .option('--redis <url>', 'queue jobs in Redis (BullMQ) for `visprompt worker` processes, e.g. redis://127.0.0.1:6379')
    .option('--workers <n>', 'jobs run at once in this process (with --redis: in-process workers, 0 for none)', int('--workers', 0, 64), DEFAULT_SERVE.workers)
    .option('--token <token>', 'require "Authorization: Bearer <token>" on the API (env VISPROMPT_TOKEN)', process.env.VISPROMPT_TOKEN)
    .option('--max-upload-mb <n>', 'largest accepted image upload, MB', float('--max-upload-mb', 0.001, 1024), DEFAULT_SERVE.maxUploadBytes / 2 ** 20)
    .option('--max-image-side <n>', 'largest accepted image width or height, pixels', int('--max-image-side', 8, 16384), DEFAULT_SERVE.maxImageSide)
    .option('--job-timeout <s>', 'seconds a job may run before it is stopped', float('--job-timeout', 0), DEFAULT_SERVE.jobTimeoutMs / 1000)
    .option('--rate-limit <n>', 'requests per minute per client address', int('--rate-limit', 1), DEFAULT_SERVE.rateLimit)
    .option('--cors <origin>', 'allow cross-origin requests from this origin (default: off)')
    .option('--model-memory-mb <n>', 'keep loaded models within this budget (default: half the memory)', int('--model-memory-mb', 1))
    .option('--lock-ms <ms>', 'with --redis: a killed worker\'s job is retried after about this long', int('--lock-ms', 1000), 30_000)
    .action(async (o: ServeFlags) => {
      const { serve } = await import('../../server/serve.js');
      const s = await serve({
        host: o.host, port: o.port, models: o.models, data: o.data, redis: o.redis, workers: o.workers, token: o.token,
        maxUploadBytes: Math.round(o.maxUploadMb * 2 ** 20), maxImageSide: o.maxImageSide, jobTimeoutMs: o.jobTimeout * 1000, rateLimit: o.rateLimit,
        cors: o.cors, modelMemoryBytes: o.modelMemoryMb ? o.modelMemoryMb * 2 ** 20 : DEFAULT_SERVE.modelMemoryBytes, lockMs: o.lockMs, log,
      });
      log(`visprompt serving ${s.url} (models ${o.models}, data ${o.data}${o.redis ? `, queue ${o.redis}` : ''})`);
      onSignals(s.close);
    });

  program.command('worker')
    .description('process jobs queued by `serve --redis` (run on any number of machines sharing --data)')
    .requiredOption('--redis <url>', 'the Redis the server queues into, e.g. redis://10.0.0.5:6379')
    .option('--models <dir>', 'folder of models (same names as the server\'s)', 'models')
    .option('--data <dir>', 'the server\'s --data folder (shared: NFS or similar)', 'visprompt-data')
    .option('--concurrency <n>', 'jobs at once', int('--concurrency', 1, 64), 1)
    .option('--job-timeout <s>', 'seconds a job may run before it is stopped', float('--job-timeout', 0), DEFAULT_SERVE.jobTimeoutMs / 1000)
    .option('--model-memory-mb <n>', 'keep loaded models within this budget (default: half the memory)', int('--model-memory-mb', 1))
    .option('--lock-ms <ms>', 'job lock; must match the server\'s', int('--lock-ms', 1000), 30_000)
    .action(async (o: { redis: string; models: string; data: string; concurrency: number; jobTimeout: number; modelMemoryMb?: number; lockMs: number }) => {
      const { work } = await import('../../server/serve.js');
      const w = await work({
        redis: o.redis, models: o.models, data: o.data, concurrency: o.concurrency, jobTimeoutMs: o.jobTimeout * 1000,
        modelMemoryBytes: o.modelMemoryMb ? o.modelMemoryMb * 2 ** 20 : DEFAULT_SERVE.modelMemoryBytes, lockMs: o.lockMs, log,
      });
      log(`visprompt worker ${process.pid} taking jobs from ${o.redis}`);
      onSignals(w.close);
    });
}
