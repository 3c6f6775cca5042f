/**
 * Reading tensors of an original-layout checkpoint (openOriginalCheckpoint's TensorSource), on small hand-built files:
 * OpenCLIP's fused attn.in_proj_weight split into diffusers' q / k / v row blocks when the pickled tensor is a
 * strided (transposed, non-contiguous) view of its storage, as torch.save keeps views; a file truncated after it
 * was opened; file descriptors released by close(); unknown names and an empty fused tensor refused. Milliseconds
 * (mutation slice io-keymaps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { openOriginalCheckpoint } from '../src/io/original-checkpoint.js';
import { isOriginalControlNetFile } from '../src/io/original-controlnet.js';
import { writeSparse, type Shapes } from './ldm-headers.js';
import { op, ZipWriter } from './torch-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-orig-reads-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const U = 'model.diffusion_model.';

/** A minimal ldm UNet (one level of 32 channels, one resnet, attention) and an OpenCLIP text tower of width 8, 2 resblocks. */
function smallSd2(): Shapes {
  const s: Shapes = {};
  const wb = (k: string, w: number[]): void => { s[`${k}.weight`] = w; s[`${k}.bias`] = [w[0]!]; };
  const res = (p: string, c: number): void => {
    wb(`${p}.in_layers.0`, [c]); wb(`${p}.in_layers.2`, [32, c, 3, 3]); wb(`${p}.emb_layers.1`, [32, 128]); wb(`${p}.out_layers.0`, [32]); wb(`${p}.out_layers.3`, [32, 32, 3, 3]);
    if (c !== 32) wb(`${p}.skip_connection`, [32, c, 1, 1]);
  };
  const st = (p: string): void => {
    wb(`${p}.norm`, [32]); wb(`${p}.proj_in`, [32, 32]); wb(`${p}.proj_out`, [32, 32]);
    const b = `${p}.transformer_blocks.0`;
    for (const n of ['norm1', 'norm2', 'norm3']) wb(`${b}.${n}`, [32]);
    for (const a of ['attn1', 'attn2']) {
      s[`${b}.${a}.to_q.weight`] = [32, 32]; s[`${b}.${a}.to_k.weight`] = [32, a === 'attn1' ? 32 : 8]; s[`${b}.${a}.to_v.weight`] = [32, a === 'attn1' ? 32 : 8]; wb(`${b}.${a}.to_out.0`, [32, 32]);
    }
    wb(`${b}.ff.net.0.proj`, [256, 32]); wb(`${b}.ff.net.2`, [32, 128]);
  };
  wb(`${U}time_embed.0`, [128, 32]); wb(`${U}time_embed.2`, [128, 128]); wb(`${U}input_blocks.0.0`, [32, 4, 3, 3]);
  res(`${U}input_blocks.1.0`, 32); st(`${U}input_blocks.1.1`);
  res(`${U}middle_block.0`, 32); st(`${U}middle_block.1`); res(`${U}middle_block.2`, 32);
  res(`${U}output_blocks.0.0`, 64); st(`${U}output_blocks.0.1`); res(`${U}output_blocks.1.0`, 64); st(`${U}output_blocks.1.1`);
  wb(`${U}out.0`, [32]); wb(`${U}out.2`, [4, 32, 3, 3]);
  const T = 'cond_stage_model.model.';
  s[`${T}token_embedding.weight`] = [10, 8]; s[`${T}positional_embedding`] = [7, 8]; s[`${T}text_projection`] = [8, 8];
  for (let i = 0; i < 2; i++) {
    const b = `${T}transformer.resblocks.${i}`;
    wb(`${b}.ln_1`, [8]); wb(`${b}.ln_2`, [8]); wb(`${b}.attn.out_proj`, [8, 8]); wb(`${b}.mlp.c_fc`, [32, 8]); wb(`${b}.mlp.c_proj`, [8, 32]);
    s[`${b}.attn.in_proj_weight`] = [24, 8]; s[`${b}.attn.in_proj_bias`] = [24];
  }
  wb(`${T}ln_final`, [8]);
  return s;
}

const ints = (xs: readonly number[]): Buffer => Buffer.concat([op.mark(), ...xs.map(op.int), op.tuple()]);
/** torch.save(OrderedDict) in the zip format; each F32 tensor is `storage` viewed with `stride` (contiguous when omitted). */
function writeStrided(file: string, tensors: Record<string, { shape: number[]; stride?: number[]; storage: Float32Array }>): void {
  const names = Object.keys(tensors);
  const entries = names.map((n, i) => {
    const t = tensors[n]!;
    const stride = t.stride ?? t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    return Buffer.concat([op.str(n), op.global('torch._utils', '_rebuild_tensor_v2'), op.mark(),
      op.mark(), op.str('storage'), op.global('torch', 'FloatStorage'), op.str(String(i)), op.str('cpu'), op.int(t.storage.length), op.tuple(), op.binpersid(),
      op.int(0), ints(t.shape), ints(stride), op.false(), op.global('collections', 'OrderedDict'), op.emptyTuple(), op.reduce(), op.tuple(), op.reduce()]);
  });
  const pkl = Buffer.concat([op.proto(), op.global('collections', 'OrderedDict'), op.emptyTuple(), op.reduce(), op.mark(), ...entries, op.setitems(), op.stop()]);
  const z = new ZipWriter(file);
  z.add('archive/data.pkl', pkl);
  z.add('archive/byteorder', Buffer.from('little'));
  names.forEach((n, i) => { const d = tensors[n]!.storage; z.add(`archive/data/${i}`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)); });
  z.add('archive/version', Buffer.from('3\n'));
  z.close();
}

test('a pickled in_proj_weight stored transposed (a strided view) splits into the q / k / v row blocks of the logical matrix', () => {
  const shapes = smallSd2();
  const tensors: Record<string, { shape: number[]; stride?: number[]; storage: Float32Array }> = {};
  for (const [k, s] of Object.entries(shapes)) tensors[k] = { shape: s, storage: new Float32Array(s.reduce((a, b) => a * b, 1)) };
  // W[r][c] = 1000 * layer + 10 * r + c (24 x 8); its storage is W^T (8 x 24, row-major), viewed with stride [1, 24]
  const W = (layer: number, r: number, c: number): number => 1000 * layer + 10 * r + c;
  for (const layer of [0, 1]) {
    const storage = new Float32Array(24 * 8);
    for (let r = 0; r < 24; r++) for (let c = 0; c < 8; c++) storage[c * 24 + r] = W(layer, r, c);
    tensors[`cond_stage_model.model.transformer.resblocks.${layer}.attn.in_proj_weight`] = { shape: [24, 8], stride: [1, 24], storage };
  }
  // the bias contiguous, values 0..23
  tensors['cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias'] = { shape: [24], storage: Float32Array.from({ length: 24 }, (_, i) => i) };
  const f = path.join(tmp, 'strided.pt');
  writeStrided(f, tensors);
  const ck = openOriginalCheckpoint(f, { unetHeads: 1, textLayers: 2 });
  try {
    const src = ck.text_encoder!.weights();
    ['q', 'k', 'v'].forEach((p, part) => {
      const t = src.read(`text_model.encoder.layers.1.self_attn.${p}_proj.weight`);
      assert.deepEqual(t.shape, [8, 8]);
      assert.deepEqual([...t.data], Array.from({ length: 64 }, (_, i) => W(1, 8 * part + Math.floor(i / 8), i % 8)), p);
      const b = src.read(`text_model.encoder.layers.0.self_attn.${p}_proj.bias`);
      assert.deepEqual([...b.data], Array.from({ length: 8 }, (_, i) => 8 * part + i), `${p} bias`);
    });
  } finally {
    ck.close();
  }
});

test('a file truncated after it was opened is named with the byte; close() releases the file descriptors; unknown names', () => {
  const s = smallSd2();
  const f = path.join(tmp, 'sd2.safetensors');
  writeSparse(f, s);
  const opts = { unetHeads: 1 };
  const fds = (): number => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  const ck = openOriginalCheckpoint(f, opts);
  const src = ck.text_encoder!.weights();
  assert.deepEqual([...src.read('text_model.encoder.layers.0.self_attn.k_proj.bias').data].slice(0, 3), [0, 0, 0]);
  ck.close();
  assert.equal(fds(), before, 'the header and the row reader are closed');
  assert.equal(isOriginalControlNetFile(f), false);
  assert.equal(fds(), before, 'isOriginalControlNetFile closes the file');
  // the fused tensor's k rows start 8 rows (of 8 F16 values) after its data offset
  const name = 'cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight';
  const headerLen = Number(fs.readFileSync(f).readBigUInt64LE(0));
  let offset = 0;
  for (const [k, shape] of Object.entries(s)) { if (k === name) break; offset += shape.reduce((a, b) => a * b, 1) * 2; }
  const ck2 = openOriginalCheckpoint(f, opts);
  try {
    // cut inside the k rows (the first read returns 4 of their 8 rows), then before them
    const kStart = 8 + headerLen + offset + 8 * 8 * 2;
    const ended = (at: number) => (e: unknown) => e instanceof FileFormatError && e.message === `${f} [${name}]: file ended while reading tensor data at byte ${at}`;
    fs.truncateSync(f, kStart + 4 * 8 * 2);
    assert.throws(() => ck2.text_encoder!.weights().read('text_model.encoder.layers.0.self_attn.k_proj.weight'), ended(kStart + 4 * 8 * 2));
    fs.truncateSync(f, 8 + headerLen);
    assert.throws(() => ck2.text_encoder!.weights().read('text_model.encoder.layers.0.self_attn.k_proj.weight'), ended(kStart));
    for (const fn of [() => ck2.unet.weights().shape('nope.weight'), () => ck2.unet.weights().read('nope.weight')]) {
      assert.throws(fn, (e: unknown) => e instanceof FileFormatError && e.message === `${f} [nope.weight]: missing weight`);
    }
  } finally {
    ck2.close();
  }
  // an empty fused q/k/v
  const e = path.join(tmp, 'empty-qkv.safetensors');
  writeSparse(e, { ...s, [name]: [0, 8] });
  assert.throws(() => openOriginalCheckpoint(e, opts), (err: unknown) => err instanceof FileFormatError
    && err.message === `${e} [${name}]: fused q/k/v has shape [0, 8]; its first dimension should be 3 x hidden size`);
});
