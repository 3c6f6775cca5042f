/**
 * Load and faults on loopback: `jobs` tiny generate jobs through `visprompt serve --redis` (a pure front
 * end) and `workers` `visprompt worker` processes; one worker is killed (SIGKILL) while it runs a job and
 * the server is restarted once. Counts lost and duplicated results, checks every result is on disk,
 * reports throughput and queue latency. Needs Debian's redis-server.
 *
 *   node dist/bench/server-load.js [--jobs 200] [--workers 2] [--steps 4]
 */
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
export const REDIS_SERVER = '/usr/bin/redis-server';

export interface LoadOptions { jobs: number; workers: number; steps: number; models: string; lockMs?: number; log?: (m: string) => void }
export interface LoadResult {
  jobs: number; succeeded: number; lost: number; duplicated: number; missingFiles: number; retried: number;
  killedJob?: string; seconds: number; jobsPerMinute: number; queueP50Ms: number; queueP95Ms: number;
}

export function redisAvailable(): boolean {
  return fs.existsSync(REDIS_SERVER) && spawnSync(REDIS_SERVER, ['--version']).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => res(p)); }); });
}

interface Proc { child: ChildProcess; log: () => string }
async function start(cmd: string, args: string[], ready: RegExp, timeoutMs = 60_000): Promise<Proc> {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const add = (d: Buffer): void => { log += d.toString(); };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${path.basename(cmd)}: no ${ready} within ${timeoutMs} ms: ${log}`)), timeoutMs);
    const check = (): void => { if (ready.test(log)) { clearTimeout(t); resolve(); } };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${path.basename(cmd)} exited ${code}: ${log}`)); });
  });
  return { child, log: () => log };
}
const stop = async (p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  await exited;
};

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const log = o.log ?? ((): void => undefined);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-load-'));
  const data = path.join(tmp, 'data');
  const redisPort = await freePort(), port = await freePort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const lockMs = String(o.lockMs ?? 3000);
  const procs: Proc[] = [];
  try {
    procs.push(await start(REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], /Ready to accept connections/));
    const serverArgs = [CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--models', o.models, '--data', data, '--redis', redisUrl, '--workers', '0', '--rate-limit', '100000', '--lock-ms', lockMs];
    let server = await start(process.execPath, serverArgs, /visprompt serving/);
    const workers: Proc[] = [];
    for (let i = 0; i < o.workers; i++) workers.push(await start(process.execPath, [CLI, 'worker', '--redis', redisUrl, '--models', o.models, '--data', data, '--lock-ms', lockMs], /taking jobs/));
    procs.push(...workers);
    const base = `http://127.0.0.1:${port}`;
    const call = async (method: string, p: string, body?: unknown): Promise<any> => {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await fetch(base + p, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
          return await r.json();
        } catch (e) { if (attempt > 100) throw e; await new Promise((r) => setTimeout(r, 100)); } // the server is restarting
      }
    };
    const t0 = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < o.jobs; i++) {
      const r = await call('POST', '/api/jobs/generate', { model: 'tiny-sd15', prompt: `job ${i}`, steps: o.steps, width: 32, height: 32, seed: i });
      if (typeof r.id !== 'string') throw new Error(`submit failed: ${JSON.stringify(r)}`);
      ids.push(r.id);
    }
    log(`${o.jobs} jobs queued in ${Date.now() - t0} ms`);
    // Kill the first worker while it runs a job.
    const victim = workers[0]!;
    let killedJob: string | undefined;
    for (let i = 0; i < 2000 && !killedJob; i++) {
      for (const id of ids) {
        let rec: { status: string; worker?: string } | undefined;
        try { rec = JSON.parse(fs.readFileSync(path.join(data, 'jobs', id, 'job.json'), 'utf8')); } catch { continue; }
        if (rec?.status === 'running' && rec.worker?.endsWith(`:${victim.child.pid}`)) { killedJob = id; break; }
      }
      if (!killedJob) await new Promise((r) => setTimeout(r, 10));
    }
    await stop(victim, 'SIGKILL');
    log(`killed worker ${victim.child.pid} during job ${killedJob}`);
    // Restart the server once, mid-run.
    await stop(server);
    server = await start(process.execPath, serverArgs, /visprompt serving/);
    procs.push(server);
    log('server restarted');
    const final = new Map<string, any>();
    const deadline = Date.now() + Math.max(120_000, o.jobs * 5_000);
    while (final.size < ids.length && Date.now() < deadline) {
      const list = await call('GET', `/api/jobs?limit=${o.jobs * 2}`);
      for (const j of list.jobs as any[]) if (['succeeded', 'failed', 'canceled'].includes(j.status)) final.set(j.id, j);
      if (final.size < ids.length) await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (Date.now() - t0) / 1000;
    const jobsOnDisk = fs.readdirSync(path.join(data, 'jobs'));
    let duplicated = 0, missingFiles = 0;
    for (const id of ids) {
      const files = fs.existsSync(path.join(data, 'jobs', id)) ? fs.readdirSync(path.join(data, 'jobs', id)) : [];
      const pngs = files.filter((f) => f.endsWith('.png'));
      if (pngs.length > 1 || files.some((f) => f.endsWith('.tmp'))) duplicated++;
      if (final.get(id)?.status === 'succeeded' && !pngs.includes('image-0.png')) missingFiles++;
    }
    duplicated += jobsOnDisk.length - ids.length; // a job stored twice would have a second folder
    const succeeded = ids.filter((id) => final.get(id)?.status === 'succeeded').length;
    const queue = ids.map((id) => final.get(id)?.timings?.queueMs).filter((x): x is number => typeof x === 'number');
    return {
      jobs: ids.length, succeeded, lost: ids.length - succeeded, duplicated, missingFiles,
      retried: ids.filter((id) => (final.get(id)?.attempts ?? 0) > 1).length, killedJob, seconds,
      jobsPerMinute: (succeeded / seconds) * 60, queueP50Ms: pct(queue, 0.5), queueP95Ms: pct(queue, 0.95),
    };
  } finally {
    for (const p of procs.reverse()) await stop(p);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name: string, dflt: number): number => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
  if (!redisAvailable()) { console.error(`server load: ${REDIS_SERVER} not found (apt-get install -y redis-server)`); process.exit(1); }
  const models = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-load-models-'));
  fs.symlinkSync(path.join(ROOT, 'test/fixtures/models/tiny-sd15'), path.join(models, 'tiny-sd15'));
  const r = await runLoad({ jobs: arg('jobs', 200), workers: arg('workers', 2), steps: arg('steps', 4), models, log: (m) => console.error(m) });
  console.log(JSON.stringify(r, null, 2));
  console.log(`server load: ${r.jobs} jobs, ${arg('workers', 2)} workers (one killed), server restarted: ${r.lost} lost, ${r.duplicated} duplicated, ` +
    `${r.missingFiles} missing; ${r.jobsPerMinute.toFixed(1)} jobs/min, queue latency p50 ${(r.queueP50Ms / 1000).toFixed(1)} s, p95 ${(r.queueP95Ms / 1000).toFixed(1)} s`);
  fs.rmSync(models, { recursive: true, force: true });
  process.exit(r.lost === 0 && r.duplicated === 0 && r.missingFiles === 0 ? 0 : 1);
}
