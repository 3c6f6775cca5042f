/** The PNG `parameters` chunk's object (src/cli/png-parameters.ts): keys, flag syntax, output-only flags left out. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { parametersChunk, snakeKey } from '../src/cli/png-parameters.js';
import { GENERATE_OPTIONS, INJECT_OPTIONS } from '../src/params/job-options.js';
import { addOptions } from '../src/params/option-spec.js';
import { parseLoraSpec } from '../src/adapters/lora/lora-set.js';

/** commander's parsed options of a command built from the specs, as the CLI's action gets them. */
function parsed(specs: Parameters<typeof addOptions>[1], argv: string[]): Record<string, unknown> {
  const cmd = addOptions(new Command('x').exitOverride(), specs);
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

test('snake_case keys as diffusers names its arguments', () => {
  assert.equal(snakeKey('negativePrompt2'), 'negative_prompt_2');
  assert.equal(snakeKey('tEdit'), 't_edit');
  assert.equal(snakeKey('clipSkip'), 'clip_skip');
});

test('every option of the spec is recorded, parsed flags in their flag syntax, output-only flags left out', () => {
  const o = parsed(GENERATE_OPTIONS, ['--model', 'm', '--prompt', 'p', '--out', 'o.png', '--save-latents', 'l.safetensors', '--preview-every', '1',
    '--original-size', '96x64', '--crop-top-left', '8,4', '--seed', '123456789012345678', '--controlnet', 'cn', '--control-image', 'c.png', '--control-scale', '0.5']);
  const chunk = parametersChunk(GENERATE_OPTIONS, { ...o, lora: [parseLoraSpec('a.safetensors:0.5'), parseLoraSpec('b.safetensors')] },
    { quiet: true, device: 'cpu', precision: 'int8', predictionType: 'v_prediction' }, { width: 64 });
  for (const k of ['out', 'save_latents', 'save_latents_file', 'preview_every']) assert.ok(!(k in chunk), k);
  assert.equal(chunk.original_size, '96x64');
  assert.equal(chunk.crop_top_left, '8,4');
  assert.equal(chunk.seed, '123456789012345678');
  assert.deepEqual(chunk.lora, ['a.safetensors:0.5', 'b.safetensors']);
  assert.deepEqual([chunk.controlnet, chunk.control_image, chunk.control_scale], [['cn'], ['c.png'], [0.5]]);
  assert.equal(chunk.precision, 'int8');
  assert.equal(chunk.prediction_type, 'v_prediction');
  assert.equal(chunk.width, 64);
  assert.equal(chunk.negative_prompt, null);
  assert.equal(chunk.steps, 50);
});

test('inject: a γ ramp in its flag syntax; --lora absent is the spec default []', () => {
  const o = parsed(INJECT_OPTIONS, ['--model', 'm', '--image', 'a.png', '--content', 'b.png', '--out', 'o.png', '--gamma-ramp', '0.2:0.9']);
  const chunk = parametersChunk(INJECT_OPTIONS, o, { quiet: true, device: 'cpu' });
  assert.equal(chunk.gamma_ramp, '0.2:0.9');
  assert.deepEqual(chunk.lora, []);
  assert.equal(chunk.precision, 'fp32');
  assert.equal(chunk.config, null);
});
