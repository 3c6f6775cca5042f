/** Shared set-up of the server tests: a models folder of tiny fixtures, a temp data folder, HTTP helpers. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { goldenPath, modelDir } from './helpers.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/src/cli/main.js');
export const REFERENCE_PNG = goldenPath('tiny-sd15', 'inversion_input.png');

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vp-${tag}-`));
}

/** tiny-sd15, its ControlNet, a CLIP model, TAESD, LoRAs, IP-Adapters, an Asyrp attribute network and a VCF aligner under one folder. */
export function modelsFolder(): string {
  const dir = tmpDir('models');
  for (const m of ['tiny-sd15', 'tiny-controlnet-sd15', 'tiny-clip', 'tiny-taesd', 'tiny-lora', 'tiny-ip-adapter']) fs.symlinkSync(modelDir(m), path.join(dir, m));
  const rnd = new NativeGaussian(9);
  const w = (shape: number[], s: number): { shape: number[]; data: Float32Array } => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
  const c = 64, temb = 128;
  fs.mkdirSync(path.join(dir, 'attributes'));
  writeSafetensors(path.join(dir, 'attributes', 'smile.safetensors'), {
    'conv1.weight': w([c, c, 1, 1], 0.2), 'conv1.bias': w([c], 0.1), 'temb_proj.weight': w([c, temb], 0.1), 'temb_proj.bias': w([c], 0.1),
    'norm2.weight': { shape: [c], data: new Float32Array(c).fill(1) }, 'norm2.bias': w([c], 0.1), 'conv2.weight': w([c, c, 1, 1], 0.5), 'conv2.bias': w([c], 0.1),
  });
  const g = readAllFloat32(goldenPath('grads', 'vcf_aligner.safetensors'));
  writeSafetensors(path.join(dir, 'aligner.safetensors'), Object.fromEntries(['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((n) => [n, g[`aligner.${n}`]!])));
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => res(p)); }); });
}

export interface Reply { status: number; json: any; text: string; headers: Headers }

export function client(base: string, token?: string) {
  return async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const h: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers };
    let b: string | Buffer | undefined;
    if (body !== undefined) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) b = body;
      else { b = JSON.stringify(body); h['content-type'] ??= 'application/json'; }
      if (typeof body === 'string') h['content-type'] ??= 'application/json';
    }
    const r = await fetch(base + p, { method, headers: h, body: b, signal: AbortSignal.timeout(120_000) });
    const text = await r.text();
    let json: any;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  };
}

/** Poll a job until it is final. */
export async function waitJob(call: ReturnType<typeof client>, id: string, timeoutMs = 120_000): Promise<any> {
  if (typeof id !== 'string') throw new Error(`no job id (the submission failed)`);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await call('GET', `/api/jobs/${id}`);
    if (['succeeded', 'failed', 'canceled'].includes(r.json?.status)) return r.json;
    if (Date.now() > end) throw new Error(`job ${id} still ${r.json?.status} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** `visprompt <args>` as a child process; resolves once `ready` matches its stderr. */
export async function spawnCli(args: string[], ready: RegExp, timeoutMs = 60_000): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => { log += d; });
  child.stderr!.on('data', (d) => { log += d; });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${ready} within ${timeoutMs} ms: ${log}`)), timeoutMs);
    const check = (): void => { if (ready.test(log)) { clearTimeout(t); resolve(); } };
    child.stderr!.on('data', check);
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`exited ${code}: ${log}`)); });
  });
  return { child, log: () => log };
}

export function dataUrl(file: string): string {
  return `data:image/png;base64,${fs.readFileSync(file).toString('base64')}`;
}
