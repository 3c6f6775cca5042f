/**
 * `embed-text` on SDXL: both encoders' outputs and the pooled projection, plus the prompt embeddings the
 * SDXL pipeline conditions on (diffusers' encode_prompt), compared with the tiny-sdxl goldens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAllFloat32 } from '../src/io/safetensors.js';
import { maxAbsDiff } from '../src/tensor.js';
import { golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-sdxl';
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-embed-sdxl-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'encode_prompt.json'), 'utf8')) as { prompt: string; prompt_2: string };

function embed(model: string, ...args: string[]): { status: number | null; stderr: string; out: string } {
  const out = path.join(tmp, `e${fs.readdirSync(tmp).length}.safetensors`);
  const r = spawnSync(process.execPath, [BIN, 'embed-text', '--quiet', '--model', model, ...args, '--out', out], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, out };
}

test('embed-text on SDXL writes both encoders (last hidden states, projected text_embeds) and prompt_embeds / pooled_prompt_embeds as diffusers', () => {
  const g = golden(M, 'encode_prompt');
  const a = embed(modelDir(M), '--prompt', meta.prompt);
  assert.equal(a.status, 0, a.stderr);
  const t = readAllFloat32(a.out);
  const errs: Record<string, number> = {};
  const check = (ours: string, theirs: string): void => {
    assert.ok(t[ours], `${ours} written`);
    assert.deepEqual(t[ours]!.shape, g[theirs]!.shape, ours);
    errs[ours] = maxAbsDiff(t[ours]!, g[theirs]!);
    assert.ok(errs[ours]! < 1e-5, `${ours} vs ${theirs}: ${errs[ours]}`);
  };
  check('last_hidden_state', 'raw.text_encoder.last_hidden_state');
  check('pooler_output', 'raw.text_encoder.pooler_output');
  check('text_encoder_2.last_hidden_state', 'raw.text_encoder_2.last_hidden_state');
  check('text_encoder_2.text_embeds', 'raw.text_encoder_2.text_embeds');
  // no CFG, same prompt for both encoders: what clip_skip_1's pooled equals too (pooled ignores clip_skip)
  check('pooled_prompt_embeds', 'clip_skip_1.pooled_prompt_embeds');

  const b = embed(modelDir(M), '--prompt', meta.prompt, '--prompt-2', meta.prompt_2);
  assert.equal(b.status, 0, b.stderr);
  const u = readAllFloat32(b.out);
  for (const k of ['prompt_embeds', 'pooled_prompt_embeds']) {
    const d = maxAbsDiff(u[k]!, g[`prompt_2.${k}`]!);
    errs[`prompt_2 ${k}`] = d;
    assert.ok(d < 1e-5, `--prompt-2 ${k}: ${d}`);
  }
  const c = embed(modelDir(M), '--prompt', meta.prompt, '--clip-skip', '1');
  assert.equal(c.status, 0, c.stderr);
  const d = maxAbsDiff(readAllFloat32(c.out).prompt_embeds!, g['clip_skip_1.prompt_embeds']!);
  errs['clip_skip_1 prompt_embeds'] = d;
  assert.ok(d < 1e-5, `--clip-skip 1 prompt_embeds: ${d}`);
  console.log(`embed-text tiny-sdxl max errors: ${JSON.stringify(Object.fromEntries(Object.entries(errs).map(([k, v]) => [k, Number(v.toExponential(1))])))}`);
});

test('embed-text --prompt-2 on a one-encoder model is a one-line error', () => {
  const r = embed(modelDir('tiny-sd15'), '--prompt', 'a cat', '--prompt-2', 'a dog');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: --prompt-2: this model has one text encoder/);
});
