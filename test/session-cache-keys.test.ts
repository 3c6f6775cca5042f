/**
 * Compiled sessions are cached per process by component id. One file opened twice with options that change
 * the graph (a single file as SD 2.x: other head counts) must not get the first opening's sessions: before the
 * fix, the second checkpoint silently ran the first one's graphs (found by the --sd-version wiring row).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { close, FIXTURES, golden, goldenPath } from './helpers.js';

const SINGLE = path.join(FIXTURES, 'models', 'tiny-pickles', 'tiny-sd15.safetensors');

test('one single file opened as SD 2.x, then with the folder\'s head counts, gives the folder\'s golden the second time', async () => {
  const meta = JSON.parse(fs.readFileSync(goldenPath('tiny-sd15', 'pipeline_t2i.json'), 'utf8')) as { num_inference_steps: number; width: number; height: number; cases: { prefix: string; guidance_scale: number; negative_prompt: string | null; prompt: string }[] };
  const gold = golden('tiny-sd15', 'pipeline_t2i');
  const c = meta.cases[0]!;
  const run = async (o: Parameters<typeof openCheckpoint>[1]) => (await textToImage(openCheckpoint(SINGLE, o), { prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: meta.num_inference_steps, guidance: c.guidance_scale, width: meta.width, height: meta.height, latents: gold.latents_in!, latentsOnly: true })).latents;
  const as2 = await run({ sdVersion: 2 }); // SD 2.x rule: heads = channels / 64 (1 here); the folder has 8 and 4
  const err = close(await run({ unetHeads: 8, textHeads: 4 }), gold[`${c.prefix}.final_latents`]!, 1e-4, 'final latents of the second opening');
  assert.ok(as2.data.some((v, i) => Math.abs(v - gold[`${c.prefix}.final_latents`]!.data[i]!) > 1e-3), 'the SD 2.x opening should differ');
  console.log(`second opening of one file: final latents max abs err ${err.toExponential(1)}`);
});
