/**
 * The temporary F32 mirror folder (src/io/f32-mirror.ts) in fresh child processes, which no earlier
 * setWeightMirrorFolder call has configured: by default ('temp') opening an F16 file's mirror makes a folder of
 * that process under the OS temp folder; SIGINT / SIGTERM / SIGHUP remove it and the process still dies of the
 * signal (a shell sees 128 + n); an application that handles the signal itself keeps the folder until it exits.
 * Four children at once, well under a second. Linux/macOS (signals).
 * (The handler's body runs only in the children, so a Stryker run lists its mutants as "no coverage" even though
 * this file kills them: checked by hand.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { f32Mirror } from '../src/io/f32-mirror.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { P, u16 } from './bytes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-mirror-sig-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A one-tensor F16 safetensors file (the value 2). */
const F16 = path.join(tmp, 'h.safetensors');
const header = Buffer.from(JSON.stringify({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }));
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(header.length));
fs.writeFileSync(F16, P(len, header, u16(0x4000)));

const url = (m: string): string => new URL(`../src/io/${m}.js`, import.meta.url).href;
/**
 * The child: (with VP_APP, its own SIGTERM handler first, which exits 7 a little later and reports how often it ran
 * and whether the folder still existed then), opens the file's mirror, prints the mirror's folder, and waits.
 */
const CHILD = `
import fs from 'node:fs';
import path from 'node:path';
import { f32Mirror } from ${JSON.stringify(url('f32-mirror'))};
import { SafetensorsFile } from ${JSON.stringify(url('safetensors'))};
let dir = 'none', calls = 0;
if (process.env.VP_APP) process.on('SIGTERM', () => {
  if (++calls === 1) setTimeout(() => { console.log(JSON.stringify({ calls, folderThen: fs.existsSync(dir) })); process.exit(7); }, 50);
});
const m = f32Mirror(SafetensorsFile.open(process.env.VP_FILE));
if (m) { dir = path.dirname(m.path); if (m.readFloat32('h').data[0] !== 2) dir = 'wrong value'; }
console.log(dir);
setInterval(() => undefined, 1000);
`;

interface Run { folder: string; lines: string[]; code: number | null; signal: NodeJS.Signals | null; stderr: string }

/** Runs the child, sends `sig` once it has printed its folder, and waits for it to end (killed after 5 s). */
function run(sig: NodeJS.Signals, app = false): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { env: { ...process.env, VP_FILE: F16, ...(app ? { VP_APP: '1' } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '', sent = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${sig}: the child did not end within 5 s (stdout ${JSON.stringify(out)})`)); }, 5000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes('\n')) { sent = true; child.kill(sig); }
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const lines = out.trim().split('\n');
      resolve({ folder: lines[0]!, lines: lines.slice(1), code, signal, stderr: err });
    });
  });
}

test('the default temp mirror folder is removed on SIGINT / SIGTERM / SIGHUP and the process dies of the signal; a handled signal is left to the application', { skip: process.platform === 'win32' && 'POSIX signals' }, async () => {
  const started = Date.now();
  // This process too has never configured a folder: its own temp folder (and a mutation run's coverage then counts
  // this file for the folder code, which the children run with the same mutant active).
  const f = SafetensorsFile.open(F16);
  assert.match(path.basename(path.dirname(f32Mirror(f)!.path)), new RegExp(`^visprompt-f32-${process.pid}-`));
  f.close();
  const [int, term, hup, app] = await Promise.all([run('SIGINT'), run('SIGTERM'), run('SIGHUP'), run('SIGTERM', true)]);
  for (const [sig, r] of [['SIGINT', int], ['SIGTERM', term], ['SIGHUP', hup], ['SIGTERM (handled)', app]] as const) {
    assert.equal(path.dirname(r.folder), os.tmpdir(), `${sig}: a folder under the OS temp folder (got ${r.folder}; stderr ${r.stderr})`);
    assert.match(path.basename(r.folder), /^visprompt-f32-\d+-/, sig);
    assert.equal(fs.existsSync(r.folder), false, `${sig}: the folder is removed`);
  }
  for (const [sig, r] of [['SIGINT', int], ['SIGTERM', term], ['SIGHUP', hup]] as const) {
    assert.deepEqual([r.code, r.signal, r.lines], [null, sig, []], `${sig}: killed by the signal itself (exit status 128 + ${os.constants.signals[sig]})`);
  }
  // the application's handler ran once and the folder was still there for it; removed at its exit
  assert.deepEqual([app.code, app.signal, app.lines], [7, null, [JSON.stringify({ calls: 1, folderThen: true })]]);
  const ms = Date.now() - started;
  assert.ok(ms < 5000, `${ms} ms`);
});
