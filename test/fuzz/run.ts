/**
 * `npm run fuzz [-- SECONDS [TARGET...]]`: the longer fuzzing run (default 300 s per target; targets:
 * safetensors, torch-file, pickle, tokenizer, image). Each target runs in its own process under a
 * watchdog, so a hang is caught too; failing inputs are written to `fuzz-findings/`. Exit status 1 when
 * anything was found.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allTargets, fuzz } from './targets.js';

const self = fileURLToPath(import.meta.url);
const OUT = path.resolve('fuzz-findings');

async function child(name: string, seconds: number): Promise<void> {
  const t = (await allTargets()).find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name}`);
  const seed = Date.now() % 2147483647;
  let k = 0;
  const r = await fuzz(t, seconds * 1000, seed, (f) => {
    if (k >= 20) return; // the first few failing inputs of a run are enough to reproduce
    fs.mkdirSync(OUT, { recursive: true });
    const base = path.join(OUT, `${name}-${seed}-${k++}`);
    fs.writeFileSync(`${base}.input`, typeof f.input === 'string' ? f.input : Buffer.from(f.input));
    fs.writeFileSync(`${base}.txt`, f.error);
  });
  process.stdout.write(`${JSON.stringify({ target: name, seed, iterations: r.iterations, seconds: r.ms / 1000, findings: r.findings.length })}\n`);
  process.exitCode = r.findings.length ? 1 : 0;
}

async function main(): Promise<void> {
  const [sec, ...names] = process.argv.slice(2);
  const seconds = Number(sec ?? 300);
  const chosen = names.length ? names : ['safetensors', 'torch-file', 'pickle', 'tokenizer', 'image'];
  let failed = false;
  for (const name of chosen) {
    const r = spawnSync(process.execPath, [self, '--child', name, String(seconds)], { encoding: 'utf8', timeout: (seconds + 120) * 1000, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.error || r.signal) {
      failed = true;
      process.stdout.write(`${JSON.stringify({ target: name, hang: true, detail: r.error?.message ?? r.signal })}\n`);
    } else {
      process.stdout.write(r.stdout);
      if (r.status !== 0) failed = true;
    }
  }
  if (failed) process.stdout.write(`findings in ${OUT}\n`);
  process.exitCode = failed ? 1 : 0;
}

// node --test runs every file under test/; this one only runs when asked.
if (!process.env.NODE_TEST_CONTEXT) {
  if (process.argv[2] === '--child') await child(process.argv[3]!, Number(process.argv[4]));
  else if (process.argv[1] && path.resolve(process.argv[1]) === self) await main();
}
