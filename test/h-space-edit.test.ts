/**
 * The h-space edit as the UNet sees it, without a UNet: the mid-block hook of hSpaceVariant run on a hand-made
 * [plain x B, edited x B] batch of h, with the feeds hSpaceFeeds makes. Expected values are worked out by hand
 * (InjectFusion: slerp toward the content rescaled to |h|, per row; the mask mixes edited and plain h per
 * position; Asyrp: h + strength * DeltaBlock(h, temb) with the DeltaBlock written out element by element).
 * Also the DeltaBlock file reader (official / prefixed names, one-line errors naming file, key, both sizes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce, type Feed } from '../src/graph/session.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { deltaBlockGroups, loadDeltaBlock } from '../src/methods/delta-block.js';
import { HSPACE_INPUTS, hSpaceFeeds, hSpaceVariant, type HSpaceEdit } from '../src/methods/h-space.js';
import type { DenoiserInputs } from '../src/models/unet2d-condition.js';
import type { Tensor } from '../src/tensor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-hspace-'));
const T = (shape: number[], data: number[]): Tensor => ({ shape, data: Float32Array.from(data) });
function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}
const tensorOf = (f: Feed | undefined): Tensor => {
  assert.ok(f && 'data' in f, 'a float feed');
  return f;
};

// h-space of one row: C = 2 channels, 1 x 2 positions; element index c * 2 + w. B = 2 rows per half.
const H_SHAPE = [1, 2, 1, 2];
const S3 = Math.sqrt(3);

/** Runs the variant's mid-block hook on h ([2B, 2, 1, 2]) and temb ([2B, 3]) with the given feeds. */
async function midBlock(edit: HSpaceEdit, h: number[], feeds: Record<string, Feed>, temb = [0.5, -1, 2, 0, 0.25, 1, -0.5, 3, 1, 1, -2, 0.1]): Promise<Float32Array> {
  const g = new Graph();
  const hv = g.input('h', [4, 2, 1, 2]);
  const tv = g.input('temb', [4, 3]);
  const hooks = hSpaceVariant(edit, H_SHAPE).hooks(g, 4, {} as DenoiserInputs);
  g.output('y', hooks.midBlock!(hv, tv));
  return (await runOnce(g, { ...feeds, h: T([4, 2, 1, 2], h), temb: T([4, 3], temb) })).y!.data;
}

test('hSpaceFeeds: per-row switches, gamma and strength only on the edited half; content rows after zeros; mask passed through', () => {
  const content = T([2, 2, 1, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const mask = T([1, 1, 1, 2], [1, 0]);
  const inject = hSpaceFeeds({ kind: 'inject', masked: true }, 2, { on: true, gamma: 0.3, content, mask });
  assert.deepEqual(Object.keys(inject).sort(), [HSPACE_INPUTS.content, HSPACE_INPUTS.gamma, HSPACE_INPUTS.mask, HSPACE_INPUTS.on].sort());
  assert.deepEqual(tensorOf(inject[HSPACE_INPUTS.on]).shape, [4, 1, 1, 1]);
  assert.deepEqual([...tensorOf(inject[HSPACE_INPUTS.on]).data], [0, 0, 1, 1]);
  assert.deepEqual([...tensorOf(inject[HSPACE_INPUTS.gamma]).data], [0, 0, 0.3, 0.3].map(Math.fround));
  assert.deepEqual(tensorOf(inject[HSPACE_INPUTS.content]).shape, [4, 2, 1, 2]);
  assert.deepEqual([...tensorOf(inject[HSPACE_INPUTS.content]).data], [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(inject[HSPACE_INPUTS.mask], mask);
  // Without a mask no mask feed; the edit off: every switch 0; no gamma given: 0.
  // A mask given to an unmasked edit is not fed (its graph has no mask input).
  const off = hSpaceFeeds({ kind: 'inject', masked: false }, 2, { on: false, content, mask });
  assert.deepEqual(Object.keys(off).sort(), [HSPACE_INPUTS.content, HSPACE_INPUTS.gamma, HSPACE_INPUTS.on].sort());
  assert.deepEqual([...tensorOf(off[HSPACE_INPUTS.on]).data], [0, 0, 0, 0]);
  assert.deepEqual([...tensorOf(off[HSPACE_INPUTS.gamma]).data], [0, 0, 0, 0]);
  const delta: HSpaceEdit = { kind: 'delta', weights: undefined as never, config: { channels: 2, tembChannels: 3, groups: 2, eps: 1e-6 }, id: 'x' };
  const d = hSpaceFeeds(delta, 1, { on: true, strength: 0.7 });
  assert.deepEqual(Object.keys(d).sort(), [HSPACE_INPUTS.on, HSPACE_INPUTS.strength].sort());
  assert.deepEqual(tensorOf(d[HSPACE_INPUTS.strength]).shape, [2, 1, 1, 1]);
  assert.deepEqual([...tensorOf(d[HSPACE_INPUTS.strength]).data], [0, Math.fround(0.7)]);
  assert.deepEqual([...tensorOf(hSpaceFeeds(delta, 1, { on: true })[HSPACE_INPUTS.strength]).data], [0, 0]);
});

test('hSpaceVariant: graph keys tell inject, masked inject and each attribute network apart; h and h\' are tapped', () => {
  const delta = (id: string): HSpaceEdit => ({ kind: 'delta', weights: undefined as never, config: { channels: 2, tembChannels: 3, groups: 2, eps: 1e-6 }, id });
  assert.equal(hSpaceVariant({ kind: 'inject', masked: false }, H_SHAPE).key, 'hspace-inject');
  assert.equal(hSpaceVariant({ kind: 'inject', masked: true }, H_SHAPE).key, 'hspace-inject-mask');
  assert.equal(hSpaceVariant(delta('smile.safetensors'), H_SHAPE).key, 'hspace-delta:smile.safetensors');
  assert.deepEqual(hSpaceVariant(delta('a'), H_SHAPE).outputs, ['mid_block', 'mid_block.edited']);
});

// Plain rows 0-1 (content zeros: the slerp would be NaN there), edited rows 2-3 with |h| = 1 and 2.
// Row 2: h = e0 (c0 w0), content 3 e1 (c0 w1): 90 degrees; gamma 1/3 -> [cos 30, sin 30] on (e0, e1).
// Row 3: h = 2 e2 (c1 w0), content 5 e3 (c1 w1): 90 degrees; gamma 1/3 -> 2 [cos 30, sin 30] on (e2, e3).
const H = [0.3, -0.7, 1.1, 2, -4, 0.5, 0, 9, 1, 0, 0, 0, 0, 0, 2, 0];
const CONTENT = T([2, 2, 1, 2], [0, 3, 0, 0, 0, 0, 0, 5]);
const EDITED = [S3 / 2, 0.5, 0, 0, 0, 0, S3, 1];

test('inject hook: edited rows slerp toward their own content row (rescaled to that row\'s |h|); plain rows keep h bit for bit', async () => {
  const feeds = hSpaceFeeds({ kind: 'inject', masked: false }, 2, { on: true, gamma: 1 / 3, content: CONTENT });
  const y = await midBlock({ kind: 'inject', masked: false }, H, feeds);
  assert.deepEqual([...y.subarray(0, 8)], [...Float32Array.from(H.slice(0, 8))], 'plain rows');
  near(y.subarray(8), EDITED, 1e-6, 'edited rows');
  // Switched off: every row is h exactly.
  const off = await midBlock({ kind: 'inject', masked: false }, H, hSpaceFeeds({ kind: 'inject', masked: false }, 2, { on: false, gamma: 1 / 3, content: CONTENT }));
  assert.deepEqual([...off], [...Float32Array.from(H)]);
});

test('inject hook with a mask [1, 1, h, w]: m h\' + (1 - m) h per position, the slerp itself over the whole row', async () => {
  const m = [0.25, 1]; // per position w, the same for both channels
  const feeds = hSpaceFeeds({ kind: 'inject', masked: true }, 2, { on: true, gamma: 1 / 3, content: CONTENT, mask: T([1, 1, 1, 2], m) });
  const y = await midBlock({ kind: 'inject', masked: true }, H, feeds);
  assert.deepEqual([...y.subarray(0, 8)], [...Float32Array.from(H.slice(0, 8))], 'plain rows');
  const want = EDITED.map((e, j) => m[j % 2]! * e + (1 - m[j % 2]!) * H[8 + j]!);
  near(y.subarray(8), want, 1e-6, 'masked edited rows');
});

// ------------------------------------------------------------------------------------------------
// Asyrp's DeltaBlock with C = 2 (GroupNorm: 2 groups of one channel over the 2 positions), temb of 3.

const W = {
  'conv_in.weight': [[1, -0.5], [0.25, 2]], 'conv_in.bias': [0.1, -0.2],
  'temb_proj.weight': [[0.5, 0, -1], [1, 0.3, 0.2]], 'temb_proj.bias': [0.05, 0.4],
  'norm.weight': [1.5, -0.5], 'norm.bias': [0.2, 0.3],
  'conv_out.weight': [[0.7, -1.2], [0.4, 0.9]], 'conv_out.bias': [-0.1, 0.6],
};
const silu = (v: number) => v / (1 + Math.exp(-v));

/** dh for one row, written out: 1x1 conv, + temb projection of SiLU(temb), GroupNorm (eps 1e-6), affine, SiLU, 1x1 conv. */
function deltaByHand(h: number[], temb: number[]): number[] {
  const x = [0, 1].map((c) => [0, 1].map((w) => W['conv_in.weight'][c]![0]! * h[w]! + W['conv_in.weight'][c]![1]! * h[2 + w]! + W['conv_in.bias'][c]!
    + temb.reduce((s, v, j) => s + W['temb_proj.weight'][c]![j]! * silu(v), 0) + W['temb_proj.bias'][c]!));
  const a = x.map((row, c) => {
    const mean = (row[0]! + row[1]!) / 2, variance = ((row[0]! - mean) ** 2 + (row[1]! - mean) ** 2) / 2;
    return row.map((v) => silu(((v - mean) / Math.sqrt(variance + 1e-6)) * W['norm.weight'][c]! + W['norm.bias'][c]!));
  });
  return [0, 1].flatMap((c) => [0, 1].map((w) => W['conv_out.weight'][c]![0]! * a[0]![w]! + W['conv_out.weight'][c]![1]! * a[1]![w]! + W['conv_out.bias'][c]!));
}

function writeDelta(file: string, names: (n: string) => string, before: Record<string, Tensor> = {}, after: Record<string, Tensor> = {}): string {
  const p = path.join(tmp, file);
  const entries: Record<string, Tensor> = { ...before };
  for (const [k, v] of Object.entries(W)) {
    const flat = (v as (number | number[])[]).flat();
    const shape = k.startsWith('conv') && k.endsWith('weight') ? [2, 2, 1, 1] : k === 'temb_proj.weight' ? [2, 3] : [2];
    entries[names(k)] = T(shape, flat);
  }
  writeSafetensors(p, { ...entries, ...after });
  return p;
}

test('delta hook: edited rows h + strength * DeltaBlock(h, temb of that row), DeltaBlock by hand; plain rows keep h', async () => {
  const { weights, config } = loadDeltaBlock(writeDelta('delta.safetensors', (k) => k), 2, 3);
  assert.deepEqual(config, { channels: 2, tembChannels: 3, groups: 2, eps: 1e-6 });
  const edit: HSpaceEdit = { kind: 'delta', weights, config, id: 'delta' };
  const temb = [0.5, -1, 2, 0, 0.25, 1, -0.5, 3, 1, 1, -2, 0.1];
  const h = [0.3, -0.7, 1.1, 2, -4, 0.5, 0, 9, 1, -2, 0.5, 3, 0.2, 0.4, -1, 1.5];
  const y = await midBlock(edit, h, hSpaceFeeds(edit, 2, { on: true, strength: 0.6 }), temb);
  assert.deepEqual([...y.subarray(0, 8)], [...Float32Array.from(h.slice(0, 8))], 'plain rows');
  const want = [2, 3].flatMap((r) => {
    const d = deltaByHand(h.slice(4 * r, 4 * r + 4), temb.slice(3 * r, 3 * r + 3));
    return d.map((v, j) => h[4 * r + j]! + 0.6 * v);
  });
  near(y.subarray(8), want, 2e-5, 'edited rows');
  // The official names (conv1 / norm2 / conv2) under a prefix, beside unrelated tensors, read the same weights
  // (other_h.conv2.bias has the prefix's length: it must not be read as conv_out.bias).
  const official: Record<string, string> = { conv_in: 'conv1', norm: 'norm2', conv_out: 'conv2' };
  const file = writeDelta('official.safetensors', (k) => `delta_h.${official[k.split('.')[0]!] ?? k.split('.')[0]}.${k.split('.')[1]}`,
    { 'unet.conv1.weight_extra': T([1], [7]), 'norm.weight': T([2], [100, 100]) }, { 'other_h.conv2.bias': T([2], [100, 100]) });
  const o = loadDeltaBlock(file, 2, 3);
  const y2 = await midBlock({ kind: 'delta', weights: o.weights, config: o.config, id: 'official' }, h, hSpaceFeeds(edit, 2, { on: true, strength: 0.6 }), temb);
  near(y2, y, 0, 'official names');
});

test('DeltaBlock groups: 32, or the largest count below it that divides the channels', () => {
  assert.deepEqual([1280, 640, 512, 48, 36, 20, 7, 2].map(deltaBlockGroups), [32, 32, 32, 24, 18, 20, 7, 2]);
});

test('DeltaBlock files: not one, wrong h-space channels, wrong time-embedding width: one-line errors naming file, key and both sizes', () => {
  const notDelta = path.join(tmp, 'lora.safetensors');
  writeSafetensors(notDelta, Object.fromEntries(['a.weight', 'b.weight', 'c.weight', 'd.weight', 'e.weight'].map((k) => [k, T([1], [0])])));
  assert.throws(() => loadDeltaBlock(notDelta, 2, 3), (e: unknown) => e instanceof FileFormatError
    && e.message === `${notDelta}: not an attribute (DeltaBlock) file: no conv_in.weight or conv1.weight among 5 tensors (a.weight, b.weight, c.weight, d.weight, ...)`);
  const four = path.join(tmp, 'four.safetensors');
  writeSafetensors(four, Object.fromEntries(['a', 'b', 'c', 'd'].map((k) => [k, T([1], [0])])));
  assert.throws(() => loadDeltaBlock(four, 2, 3), (e: unknown) => e instanceof FileFormatError && e.message.endsWith('among 4 tensors (a, b, c, d)'));
  // A name that only ends in conv_in.weight is no anchor ("xconv_in.weight").
  const almost = path.join(tmp, 'almost.safetensors');
  writeSafetensors(almost, { 'xconv_in.weight': T([1], [0]) });
  assert.throws(() => loadDeltaBlock(almost, 2, 3), /not an attribute \(DeltaBlock\) file/);
  const file = writeDelta('prefixed.safetensors', (k) => `attr.${k}`);
  assert.throws(() => loadDeltaBlock(file, 4, 3), (e: unknown) => e instanceof FileFormatError && e.key === 'attr.conv_in.weight'
    && e.message === `${file} [attr.conv_in.weight]: attribute network has 2 input channels but this UNet's h-space has 4`);
  assert.throws(() => loadDeltaBlock(file, 2, 8), (e: unknown) => e instanceof FileFormatError && e.key === 'attr.temb_proj.weight'
    && e.message === `${file} [attr.temb_proj.weight]: attribute network expects a 3-dim time embedding but this UNet's is 8-dim`);
  // Input channels alone (conv_in [2, 3, 1, 1] into a 2-channel h-space).
  const narrow = path.join(tmp, 'narrow.safetensors');
  writeSafetensors(narrow, { 'conv_in.weight': T([2, 3, 1, 1], [0, 0, 0, 0, 0, 0]), 'temb_proj.weight': T([2, 3], [0, 0, 0, 0, 0, 0]) });
  assert.throws(() => loadDeltaBlock(narrow, 2, 3), (e: unknown) => e instanceof FileFormatError && e.key === 'conv_in.weight'
    && e.message.endsWith("attribute network has 3 input channels but this UNet's h-space has 2"));
  // Output channels are checked too (conv_in [3, 2, 1, 1] into a 2-channel h-space).
  const wide = path.join(tmp, 'wide.safetensors');
  writeSafetensors(wide, { 'conv_in.weight': T([3, 2, 1, 1], [0, 0, 0, 0, 0, 0]), 'temb_proj.weight': T([2, 3], [0, 0, 0, 0, 0, 0]) });
  assert.throws(() => loadDeltaBlock(wide, 2, 3), (e: unknown) => e instanceof FileFormatError && e.key === 'conv_in.weight');
});
