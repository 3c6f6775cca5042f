/**
 * The single-file key maps pinned as data tables (test/fixtures/keymaps/), checked against files and
 * rules that are not our own inverse:
 * - SD 1.x: `sd1-tiny.json` pairs every key of models/tiny-pickles/tiny-sd15.safetensors (written by
 *   diffusers' own convert_diffusers_to_original_stable_diffusion.py) with its diffusers key, found by
 *   equal tensor values (every value in the tiny model is unique). SD 2.x uses the same UNet / VAE map.
 * - SD 2.x: `sd2-openclip-tiny.json` names the OpenCLIP text encoder as diffusers' single-file rules do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { openOriginalCheckpoint } from '../src/io/original-checkpoint.js';
import { originalKeyOf, toOriginalLayout, type OriginalLayoutContext } from '../src/io/original-keymap.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { openComponentWeights } from '../src/io/weights.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { concatRows, type Tensor } from '../src/tensor.js';
import { close, FIXTURES, golden, goldenPath, modelDir } from './helpers.js';

const SINGLE = path.join(FIXTURES, 'models', 'tiny-pickles', 'tiny-sd15.safetensors');
const COMPONENTS = ['unet', 'vae', 'text_encoder'] as const;
type Entry = [original: string, component: (typeof COMPONENTS)[number], diffusers: string];
const SD1 = (JSON.parse(fs.readFileSync(path.join(FIXTURES, 'keymaps', 'sd1-tiny.json'), 'utf8')) as { entries: Entry[] }).entries;
const SD2_TEXT = (JSON.parse(fs.readFileSync(path.join(FIXTURES, 'keymaps', 'sd2-openclip-tiny.json'), 'utf8')) as { entries: [string, 0 | 1 | 2 | null, string][] }).entries;

function readFolder(m: string): Record<(typeof COMPONENTS)[number], Record<string, Tensor>> {
  const one = (c: string): Record<string, Tensor> => {
    const src = openComponentWeights(path.join(modelDir(m), c));
    return Object.fromEntries([...src.keys()].map((k) => [k, src.read(k)]));
  };
  return { unet: one('unet'), vae: one('vae'), text_encoder: one('text_encoder') };
}
const digest = (t: Tensor): string => crypto.createHash('sha1').update(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex');

/** The structure the map depends on, read from the folder's configs (not from our key map). */
function contextOf(m: string, textLayout: 'clip' | 'openclip'): OriginalLayoutContext {
  const cfg = (c: string) => JSON.parse(fs.readFileSync(path.join(modelDir(m), c, 'config.json'), 'utf8')) as Record<string, unknown>;
  const u = cfg('unet'), v = cfg('vae');
  return {
    layersPerBlock: u.layers_per_block as number,
    upBlockHasAttention: (u.up_block_types as string[]).map((t) => t.startsWith('CrossAttn')),
    vaeLevels: (v.block_out_channels as number[]).length,
    textLayout,
  };
}

test('the SD 1.x table is exactly what diffusers\' conversion wrote: every file key, every diffusers key, equal values', () => {
  const file = readAllFloat32(SINGLE);
  const folder = readFolder('tiny-sd15');
  assert.deepEqual(SD1.map((e) => e[0]).sort(), Object.keys(file).sort(), 'table rows = keys of tiny-sd15.safetensors');
  for (const c of COMPONENTS) {
    assert.deepEqual(SD1.filter((e) => e[1] === c).map((e) => e[2]).sort(), Object.keys(folder[c]).sort(), `every diffusers ${c} key reached once`);
  }
  for (const [o, c, d] of SD1) assert.equal(digest(file[o]!), digest(folder[c][d]!), `${o} holds ${c} ${d}`);
});

test('originalKeyOf gives the SD 1.x table\'s original name for every diffusers key (and the SD 2.x UNet / VAE)', () => {
  for (const m of ['tiny-sd15', 'tiny-sd21']) {
    const ctx = contextOf(m, 'clip');
    const wrong = SD1.filter(([o, c, d]) => originalKeyOf(c, d, ctx)?.key !== o).map(([o, c, d]) => `${c} ${d}: ${originalKeyOf(c, d, ctx)?.key} (diffusers wrote ${o})`);
    assert.deepEqual(wrong, [], `${m}: ${wrong.length} keys mapped differently`);
  }
  // The one reshape: VAE mid-block attention projections are 1x1 convolutions in the original.
  const conv = SD1.filter(([, c, d]) => c === 'vae' && originalKeyOf(c, d, contextOf('tiny-sd15', 'clip'))?.conv1x1).map((e) => e[2]).sort();
  assert.deepEqual(conv, ['decoder', 'encoder'].flatMap((p) => ['to_k', 'to_out.0', 'to_q', 'to_v'].map((q) => `${p}.mid_block.attentions.0.${q}.weight`)));
});

test('originalKeyOf gives the SD 2.x OpenCLIP table\'s name and q/k/v row block for every text-encoder key', () => {
  const ctx = contextOf('tiny-sd21', 'openclip');
  const wrong = SD2_TEXT.filter(([o, part, d]) => {
    const r = originalKeyOf('text_encoder', d, ctx);
    return r?.key !== o || (r.qkvPart ?? null) !== part;
  }).map(([o, part, d]) => `${d}: ${JSON.stringify(originalKeyOf('text_encoder', d, ctx))} (expected ${o} part ${part})`);
  assert.deepEqual(wrong, []);
});

test('opening diffusers\' tiny-sd15.safetensors reads every diffusers tensor with the folder\'s value', () => {
  const ck = openOriginalCheckpoint(SINGLE, { unetHeads: 8, textHeads: 4 });
  const folder = readFolder('tiny-sd15');
  try {
    for (const c of COMPONENTS) {
      const src = ck[c]!.weights();
      assert.deepEqual([...src.keys()].sort(), Object.keys(folder[c]).sort(), `${c} keys`);
      for (const [k, t] of Object.entries(folder[c])) {
        const got = src.read(k);
        assert.deepEqual(got.shape, t.shape, `${c} ${k} shape`);
        assert.equal(digest(got), digest(t), `${c} ${k} values`);
      }
    }
  } finally {
    ck.close();
  }
});

test('an SD 2.x file laid out by the tables (OpenCLIP text encoder, fused q/k/v) reads back every tiny-sd21 tensor', () => {
  const folder = readFolder('tiny-sd21');
  const out: Record<string, Tensor> = {};
  for (const [o, c, d] of SD1) {
    if (c === 'text_encoder') continue;
    const t = folder[c][d]!;
    const conv = c === 'vae' && /mid_block\.attentions\.0\.(to_[qkv]|to_out\.0)\.weight$/.test(d);
    out[o] = conv ? { shape: [...t.shape, 1, 1], data: t.data } : t;
  }
  const fused = new Map<string, Tensor[]>();
  for (const [o, part, d] of SD2_TEXT) {
    if (part === null) { out[o] = folder.text_encoder[d]!; continue; }
    const parts = fused.get(o) ?? [];
    parts[part] = folder.text_encoder[d]!;
    fused.set(o, parts);
  }
  for (const [o, parts] of fused) out[o] = concatRows(parts);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sd2map-')), 'sd2.safetensors');
  writeSafetensors(file, out);
  const layers = new Set(SD2_TEXT.map((e) => /resblocks\.(\d+)\./.exec(e[0])?.[1]).filter((x) => x !== undefined)).size;
  const ck = openOriginalCheckpoint(file, { textLayers: layers, unetHeads: 8, textHeads: 4 });
  try {
    assert.equal(ck.version, 2);
    assert.equal(ck.textEncoderLayout, 'openclip');
    for (const c of COMPONENTS) {
      const src = ck[c]!.weights();
      assert.deepEqual([...src.keys()].sort(), Object.keys(folder[c]).sort(), `every ${c} key reached`);
      for (const [k, t] of Object.entries(folder[c])) assert.equal(digest(src.read(k)), digest(t), `${c} ${k}`);
    }
  } finally {
    ck.close();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});

test('diffusers\' tiny-sd15.safetensors with the folder\'s head counts gives the folder\'s text-to-image golden', async () => {
  const meta = JSON.parse(fs.readFileSync(goldenPath('tiny-sd15', 'pipeline_t2i.json'), 'utf8')) as { num_inference_steps: number; width: number; height: number; cases: { prefix: string; guidance_scale: number; negative_prompt: string | null; prompt: string }[] };
  const gold = golden('tiny-sd15', 'pipeline_t2i');
  const c = meta.cases[0]!;
  // A single file does not record head counts; the folder's configs say 8 (UNet) and 4 (text encoder).
  const ck = openCheckpoint(SINGLE, { unetHeads: 8, textHeads: 4 });
  const r = await textToImage(ck, { prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: meta.num_inference_steps, guidance: c.guidance_scale, width: meta.width, height: meta.height, latents: gold.latents_in!, latentsOnly: true });
  const err = close(r.latents, gold[`${c.prefix}.final_latents`]!, 1e-4, 'final latents');
  console.log(`tiny-sd15.safetensors (diffusers conversion) final latents max abs err ${err.toExponential(1)}`);
});

// SDXL: no diffusers-converted SDXL file exists in the reference data, so the table (sdxl-tiny.json) is derived by
// scripts/derive-sdxl-keymap.mjs from diffusers' SDXL conversion block positions, checked there to reproduce
// sd1-tiny.json (diffusers' own conversion) on tiny-sd15, with every module-inner name taken from sd1-tiny.json and
// the text encoders from the SD 1.x / OpenCLIP tables. It is data, independent of src/io/original-keymap.ts.
type XLEntry = [original: string, component: 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2', part: 0 | 1 | 2 | 'T' | null, diffusers: string];
const SDXL = (JSON.parse(fs.readFileSync(path.join(FIXTURES, 'keymaps', 'sdxl-tiny.json'), 'utf8')) as { entries: XLEntry[] }).entries;
const XL_COMPONENTS = ['unet', 'vae', 'text_encoder', 'text_encoder_2'] as const;
function readFolderXL(): Record<(typeof XL_COMPONENTS)[number], Record<string, Tensor>> {
  const one = (c: string): Record<string, Tensor> => {
    const src = openComponentWeights(path.join(modelDir('tiny-sdxl'), c));
    return Object.fromEntries([...src.keys()].filter((k) => !k.endsWith('position_ids')).map((k) => [k, src.read(k)]));
  };
  return { unet: one('unet'), vae: one('vae'), text_encoder: one('text_encoder'), text_encoder_2: one('text_encoder_2') };
}
const transpose2d = (t: Tensor): Tensor => {
  const [r, c] = t.shape as [number, number];
  const data = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data };
};
/** The original-layout file as the table lays it out (fused q/k/v by row block, transposed projection, 1x1 VAE convs). */
function layoutByTable(folder: ReturnType<typeof readFolderXL>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const fused = new Map<string, Tensor[]>();
  for (const [o, c, part, d] of SDXL) {
    const t = folder[c][d]!;
    if (part === 'T') out[o] = transpose2d(t);
    else if (part !== null) { const p = fused.get(o) ?? []; p[part] = t; fused.set(o, p); }
    else out[o] = c === 'vae' && /mid_block\.attentions\.0\.(to_[qkv]|to_out\.0)\.weight$/.test(d) ? { shape: [...t.shape, 1, 1], data: t.data } : t;
  }
  for (const [o, p] of fused) out[o] = concatRows(p);
  return out;
}

test('the SDXL table: every tiny-sdxl key once; toOriginalLayout writes exactly its names and values (q/k/v row blocks, transposed projection)', () => {
  const folder = readFolderXL();
  for (const c of XL_COMPONENTS) {
    assert.deepEqual(SDXL.filter((e) => e[1] === c).map((e) => e[3]).sort(), Object.keys(folder[c]).sort(), `every diffusers ${c} key reached once`);
  }
  const want = layoutByTable(folder);
  const got = toOriginalLayout(folder);
  const names = [...new Set(SDXL.map((e) => e[0]))].sort();
  assert.deepEqual(Object.keys(got).sort(), names, 'original key names');
  const wrong = names.filter((k) => got[k]!.shape.join() !== want[k]!.shape.join() || digest(got[k]!) !== digest(want[k]!));
  assert.deepEqual(wrong, [], 'tensors laid out differently from the table');
  assert.ok(SDXL.some((e) => e[0] === `${'model.diffusion_model.'}label_emb.0.0.weight`) && SDXL.filter((e) => e[2] === 0).length > 0);
});

test('an SDXL file laid out by the table reads back every tiny-sdxl tensor', () => {
  const folder = readFolderXL();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sdxlmap-')), 'sdxl.safetensors');
  writeSafetensors(file, layoutByTable(folder));
  try {
    const ck = openCheckpoint(file, { unetHeads: [2, 4, 4], textHeads: 4, imageSize: 64 });
    const views = { unet: ck.unet().weights, vae: ck.vae().weights, text_encoder: ck.textEncoder().weights, text_encoder_2: ck.textEncoder2().weights };
    for (const c of XL_COMPONENTS) {
      const bad = Object.entries(folder[c]).filter(([k, t]) => digest(views[c].get(k)) !== digest(t)).map(([k]) => k);
      assert.deepEqual(bad, [], `${c}: tensors read differently`);
    }
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
