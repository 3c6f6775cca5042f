/**
 * The scheduler flags through the CLI: an unknown --scheduler lists the names, --timestep-spacing is checked,
 * invert / vary accept only ddim, --help lists every scheduler. (Moved out of schedulers-config.test.ts: it
 * spawns the CLI, ~10 s, which the mutation slices cannot afford per mutant.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SCHEDULERS } from '../src/schedulers/index.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sched-cli-'));

const BIN = path.resolve(FIXTURES, '../../dist/src/cli/main.js');
function cli(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stderr: r.stderr };
}

test('CLI: unknown --scheduler lists the names; invert / vary accept only ddim; --help lists every scheduler', () => {
  const model = modelDir('tiny-sd15'), out = path.join(tmp, 'x.png'), img = goldenPath('tiny-sd15', 'inversion_input.png');
  const expectError = (args: string[], re: RegExp): void => {
    const r = cli(args);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/);
  };
  expectError(['generate', '--model', model, '--prompt', 'a', '--out', out, '--scheduler', 'dpm++3m'], new RegExp(`unknown scheduler "dpm\\+\\+3m" for --scheduler \\(expected one of: ${SCHEDULERS.join(', ').replace(/\+/g, '\\+')}\\)`));
  expectError(['generate', '--model', model, '--prompt', 'a', '--out', out, '--timestep-spacing', 'middle'], /--timestep-spacing must be one of leading, trailing, linspace/);
  expectError(['invert', '--model', model, '--image', img, '--save-chain', path.join(tmp, 'c.safetensors'), '--scheduler', 'euler-a'], /error: --scheduler euler-a: invert samples with ddim only/);
  expectError(['vary', '--model', model, '--image', img, '--prompt', 'a', '--out', out, '--scheduler', 'unipc'], /error: --scheduler unipc: vary samples with ddim only/);
  const help = spawnSync(process.execPath, [BIN, 'generate', '--help'], { encoding: 'utf8' }).stdout.replace(/\s+/g, ' ');
  for (const n of SCHEDULERS) assert.ok(help.includes(n), `--help lists ${n}`);
  assert.match(help, /--timestep-spacing/);
});
