/**
 * ControlNets in the original (lllyasviel) layout: a .pth (torch zip) or .safetensors file with
 * input_hint_block / zero_convs / middle_block_out and ldm UNet-encoder names, optionally under
 * control_model. (v1.0 files holding a whole SD model too). The test writes the tiny diffusers ControlNet
 * in that layout (names from original-keymap's UNet table plus the ControlNet parts of diffusers'
 * convert_controlnet_checkpoint) and checks the config inferred from shapes and every weight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ControlNet } from '../src/components/controlnet.js';
import { originalKeyOf, UNET_PREFIX } from '../src/io/original-keymap.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openComponentWeights } from '../src/io/weights.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { FIXTURES } from './helpers.js';
import { writeTorchZip } from './torch-writer.js';

const FOLDER = path.join(FIXTURES, 'models', 'tiny-controlnet-sd15');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-cn-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function originalLayout(prefix: string): Record<string, Tensor> {
  const src = openComponentWeights(FOLDER);
  const ctx = { layersPerBlock: 2, upBlockHasAttention: [], vaeLevels: 0, textLayout: 'clip' as const };
  const blocks = new Set([...src.keys()].filter((k) => k.startsWith('controlnet_cond_embedding.blocks.')).map((k) => k.split('.')[2])).size;
  const out: Record<string, Tensor> = {};
  for (const k of src.keys()) {
    let m: RegExpExecArray | null;
    let o: string | undefined;
    if ((m = /^controlnet_cond_embedding\.conv_in\.(.+)$/.exec(k))) o = `input_hint_block.0.${m[1]}`;
    else if ((m = /^controlnet_cond_embedding\.blocks\.(\d+)\.(.+)$/.exec(k))) o = `input_hint_block.${2 * (Number(m[1]) + 1)}.${m[2]}`;
    else if ((m = /^controlnet_cond_embedding\.conv_out\.(.+)$/.exec(k))) o = `input_hint_block.${2 * (blocks + 1)}.${m[1]}`;
    else if ((m = /^controlnet_down_blocks\.(\d+)\.(.+)$/.exec(k))) o = `zero_convs.${m[1]}.0.${m[2]}`;
    else if ((m = /^controlnet_mid_block\.(.+)$/.exec(k))) o = `middle_block_out.0.${m[1]}`;
    else o = originalKeyOf('unet', k, ctx)?.key.slice(UNET_PREFIX.length);
    assert.ok(o, `no original name for ${k}`);
    out[prefix + o] = src.read(k);
  }
  return out;
}

test('an original-layout ControlNet (.pth and .safetensors, with and without control_model.) opens with the folder\'s config and weights', () => {
  const folder = ControlNet.open(FOLDER);
  const raw = (p: string): Record<string, { dtype: 'F32'; shape: readonly number[]; data: Uint8Array }> => Object.fromEntries(Object.entries(originalLayout(p)).map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }]));
  const pth = path.join(tmp, 'control_tiny.pth');
  writeTorchZip(pth, raw(''));
  const full = path.join(tmp, 'control_full.pth'); // v1.0 style: control_model.* beside a (here: stub) SD model
  writeTorchZip(full, { ...raw('control_model.'), 'model.diffusion_model.input_blocks.0.0.weight': { dtype: 'F32', shape: [1], data: new Uint8Array(4) } }, { wrap: true });
  const st = path.join(tmp, 'control_tiny.safetensors');
  writeSafetensors(st, originalLayout(''));
  const keys = [...openComponentWeights(FOLDER).keys()];
  for (const file of [pth, full, st]) {
    const cn = ControlNet.open(file);
    assert.deepEqual(cn.config, folder.config, file);
    assert.equal([...cn.weights.source.keys()].length, keys.length, file);
    for (const k of keys) assert.equal(maxAbsDiff(cn.weights.get(k), folder.weights.get(k)), 0, `${file} ${k}`);
  }
});
