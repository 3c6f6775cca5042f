import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { parseLoraSpec, LoraSet } from '../src/adapters/lora/lora-set.js';
import { ModuleIndex } from '../src/adapters/lora/key-map.js';
import { FileFormatError, InputError } from '../src/errors.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import type { TensorSource } from '../src/io/weights.js';
import { Graph } from '../src/graph/ir.js';
import { param } from '../src/graph/nn.js';
import * as op from '../src/graph/ops.js';
import { compile, configureEngine, runOnce } from '../src/graph/session.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import type { Tensor } from '../src/tensor.js';
import { close, FIXTURES, golden, goldenPath, modelDir } from './helpers.js';
import { writeTorchLegacy, writeTorchZip, type RawTensor } from './torch-writer.js';
import { SafetensorsFile } from '../src/io/safetensors.js';

const SD15 = modelDir('tiny-sd15');
const SDXL = modelDir('tiny-sdxl');
const KOHYA = path.join(FIXTURES, 'models/tiny-lora/lora_kohya_sd15.safetensors');
const PEFT = path.join(FIXTURES, 'models/tiny-lora/pytorch_lora_weights.safetensors');
const KOHYA_XL = path.join(FIXTURES, 'models/tiny-lora/lora_kohya_sdxl.safetensors');
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-lora-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Meta = { prompt: string; negative_prompt: string; num_inference_steps: number; guidance_scale: number; width: number; height: number; lora_scale: number | null; adapter_weights: number[] | null };
const meta = (name: string): Meta => JSON.parse(fs.readFileSync(goldenPath('tiny-lora', `${name}.json`), 'utf8')) as Meta;

const partSource = (ck: Checkpoint, part: string): TensorSource =>
  part === 'unet' ? ck.unet().weights.source : part === 'text_encoder' ? ck.textEncoder().weights.source : ck.textEncoder2().weights.source;

const bitsEqual = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function run(ck: Checkpoint, name: string): Promise<{ latents: Tensor; embeds: Tensor }> {
  const m = meta(name);
  const r = await textToImage(ck, {
    prompt: m.prompt, negativePrompt: m.negative_prompt, steps: m.num_inference_steps, guidance: m.guidance_scale, width: m.width, height: m.height,
    latents: golden('tiny-lora', name).latents_in!, latentsOnly: true,
  });
  const embeds = (await ck.textEncoder().encode([m.prompt])).lastHiddenState;
  return { latents: r.latents, embeds };
}

test('LoRA merged weights equal diffusers fuse_lora bit for bit (kohya Linear / 1x1 / 3x3 / stride-2 conv / text encoder, PEFT)', () => {
  const g = golden('tiny-lora', 'merged_weights');
  const layers = (JSON.parse(fs.readFileSync(goldenPath('tiny-lora', 'merged_weights.json'), 'utf8')) as { layers: { prefix: string; module: string; file: string; lora_scale: number }[] }).layers;
  const base = openCheckpoint(SD15);
  const byFile = new Map<string, Checkpoint>();
  let worst = 0;
  for (const l of layers) {
    let ck = byFile.get(l.file);
    if (!ck) { ck = openCheckpoint(SD15, { loras: [{ path: path.join(FIXTURES, 'models/tiny-lora', l.file), scale: l.lora_scale }] }); byFile.set(l.file, ck); }
    const [part, ...rest] = l.module.split('.');
    const key = `${rest.join('.')}.weight`;
    close(partSource(base, part!).read(key), g[`${l.prefix}.weight`]!, 0, `${l.prefix} base`);
    worst = Math.max(worst, close(partSource(ck, part!).read(key), g[`${l.prefix}.fused_weight`]!, 0, `${l.prefix} fused`));
  }
  console.log(`merged weights, ${layers.length} layers: max abs err ${worst.toExponential(1)}`);
});

test('LoRA SDXL kohya (SGM UNet names, lora_te1_/lora_te2_): merged weights of unet, text_encoder, text_encoder_2 equal fuse_lora', () => {
  const g = golden('tiny-lora', 'merged_weights_sdxl');
  const layers = (JSON.parse(fs.readFileSync(goldenPath('tiny-lora', 'merged_weights_sdxl.json'), 'utf8')) as { layers: { prefix: string; module: string; lora_scale: number }[] }).layers;
  const ck = openCheckpoint(SDXL, { loras: [{ path: KOHYA_XL, scale: layers[0]!.lora_scale }] });
  let worst = 0;
  const parts = new Set<string>();
  for (const l of layers) {
    const [part, ...rest] = l.module.split('.');
    parts.add(part!);
    worst = Math.max(worst, close(partSource(ck, part!).read(`${rest.join('.')}.weight`), g[`${l.prefix}.fused_weight`]!, 0, l.prefix));
  }
  assert.deepEqual([...parts].sort(), ['text_encoder', 'text_encoder_2', 'unet']);
  console.log(`SDXL merged weights, ${layers.length} layers: max abs err ${worst.toExponential(1)}`);
});

test('SGM names: every UNet module of the SDXL kohya file maps onto the module the reference names', () => {
  const layers = (JSON.parse(fs.readFileSync(goldenPath('tiny-lora', 'merged_weights_sdxl.json'), 'utf8')) as { layers: { module: string; sgm_path?: string }[] }).layers;
  const index = new ModuleIndex(openCheckpoint(SDXL).unet().weights.source.keys());
  let n = 0;
  for (const l of layers) {
    if (!l.sgm_path) continue;
    assert.equal(index.resolveKohya(l.sgm_path.replace(/\./g, '_'), 'unet'), l.module.slice('unet.'.length), l.sgm_path);
    n++;
  }
  assert.ok(n >= 10);
  // Upsampler of an up block without attention is the second part in the LDM layout.
  assert.equal(index.resolveKohya('output_blocks_2_2_conv', 'unet'), 'up_blocks.0.upsamplers.0.conv');
});

for (const name of ['pipeline_kohya', 'pipeline_peft', 'pipeline_multi'] as const) {
  test(`LoRA pipeline parity with diffusers (${name}): final latents and prompt embeddings`, async () => {
    const m = meta(name);
    const g = golden('tiny-lora', name);
    const loras = name === 'pipeline_kohya' ? [{ path: KOHYA, scale: m.lora_scale! }]
      : name === 'pipeline_peft' ? [{ path: PEFT, scale: m.lora_scale! }]
        : [{ path: KOHYA, scale: m.adapter_weights![0]! }, { path: PEFT, scale: m.adapter_weights![1]! }];
    const r = await run(openCheckpoint(SD15, { loras }), name);
    const e = close(r.embeds, g.prompt_embeds!, 1e-5, 'prompt embeds');
    const f = close(r.latents, g.final_latents!, 1e-4, 'final latents');
    console.log(`${name}: prompt embeds ${e.toExponential(1)}, final latents ${f.toExponential(1)}`);
  });
}

test('LoRA SDXL: both text encoders receive the merged weights (prompt and pooled embeddings equal diffusers with lora_scale)', async () => {
  const m = meta('pipeline_sdxl_kohya');
  const g = golden('tiny-lora', 'pipeline_sdxl_kohya');
  const ck = openCheckpoint(SDXL, { loras: [{ path: KOHYA_XL, scale: m.lora_scale! }] });
  const emb = await ck.conditioner().encode([m.negative_prompt, m.prompt]);
  const d = emb.embeds.data.length / 2, p = emb.pooled!.data.length / 2;
  const e1 = close({ shape: g.prompt_embeds!.shape, data: emb.embeds.data.subarray(d) }, g.prompt_embeds!, 1e-5, 'prompt embeds');
  const e2 = close({ shape: g.negative_prompt_embeds!.shape, data: emb.embeds.data.subarray(0, d) }, g.negative_prompt_embeds!, 1e-5, 'negative prompt embeds');
  const e3 = close({ shape: g.pooled_prompt_embeds!.shape, data: emb.pooled!.data.subarray(p) }, g.pooled_prompt_embeds!, 1e-5, 'pooled');
  console.log(`SDXL LoRA embeddings: ${e1.toExponential(1)} / ${e2.toExponential(1)} / pooled ${e3.toExponential(1)}`);
});

test('LoRA SDXL pipeline parity (kohya file, Euler, both text encoders and the UNet merged): final latents', async () => {
  const m = meta('pipeline_sdxl_kohya');
  const g = golden('tiny-lora', 'pipeline_sdxl_kohya');
  const ck = openCheckpoint(SDXL, { loras: [{ path: KOHYA_XL, scale: m.lora_scale! }] });
  const r = await textToImage(ck, {
    prompt: m.prompt, negativePrompt: m.negative_prompt, steps: m.num_inference_steps, guidance: m.guidance_scale, width: m.width, height: m.height,
    latents: g.latents_in!, latentsOnly: true, scheduler: 'euler',
  });
  const f = close(r.latents, g.final_latents!, 1e-4, 'final latents');
  console.log(`pipeline_sdxl_kohya: final latents ${f.toExponential(1)}`);
});

/** The tensors of a safetensors file as stored (dtype and bytes), for writing its pickled twin. */
function rawTensors(file: string): Record<string, RawTensor> {
  const f = SafetensorsFile.open(file);
  try {
    return Object.fromEntries([...f.tensors.values()].map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: f.readBytes(t.name) }]));
  } finally { f.close(); }
}

test('pickled LoRA files (.bin torch zip, .pt legacy) merge to exactly the weights of their safetensors twins', () => {
  const bin = path.join(tmp, 'pytorch_lora_weights.bin');
  const pt = path.join(tmp, 'lora_kohya_sd15.pt');
  writeTorchZip(bin, rawTensors(PEFT));
  writeTorchLegacy(pt, rawTensors(KOHYA));
  const keys = ['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight', 'down_blocks.0.resnets.0.conv1.weight'];
  const pairs: [string, string][] = [[bin, PEFT], [pt, KOHYA]];
  for (const [pickled, twin] of pairs) {
    const a = openCheckpoint(SD15, { loras: [{ path: pickled, scale: 0.7 }] });
    const b = openCheckpoint(SD15, { loras: [{ path: twin, scale: 0.7 }] });
    for (const k of keys) assert.ok(bitsEqual(a.unet().weights.source.read(k).data, b.unet().weights.source.read(k).data), `${path.basename(pickled)} ${k}`);
    const q = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    assert.ok(bitsEqual(a.textEncoder().weights.source.read(q).data, b.textEncoder().weights.source.read(q).data));
  }
});

test('LoRA at scale 0 equals the base model bit for bit; unloading restores the base bit for bit', async () => {
  const base = await run(openCheckpoint(SD15), 'pipeline_kohya');
  const zero = await run(openCheckpoint(SD15, { loras: [{ path: KOHYA, scale: 0 }, { path: PEFT, scale: 0 }] }), 'pipeline_kohya');
  assert.ok(bitsEqual(zero.latents.data, base.latents.data), 'scale 0 latents');
  assert.ok(bitsEqual(zero.embeds.data, base.embeds.data), 'scale 0 embeddings');

  const ck = openCheckpoint(SD15);
  const key = 'down_blocks.0.resnets.0.conv1.weight';
  const w0 = ck.unet().weights.source.read(key).data;
  await ck.setLoras([{ path: KOHYA, scale: 0.7 }]);
  const lora = await run(ck, 'pipeline_kohya');
  assert.ok(!bitsEqual(lora.latents.data, base.latents.data), 'the LoRA changes the result');
  assert.ok(!bitsEqual(ck.unet().weights.source.read(key).data, w0));
  await ck.unloadLoras();
  assert.deepEqual(ck.loras, []);
  assert.ok(bitsEqual(ck.unet().weights.source.read(key).data, w0), 'unloaded weight');
  const back = await run(ck, 'pipeline_kohya');
  assert.ok(bitsEqual(back.latents.data, base.latents.data), 'unloaded latents');
  assert.ok(bitsEqual(back.embeds.data, base.embeds.data), 'unloaded embeddings');
});

/** A LoRA file from the kohya file with some keys renamed or some tensors replaced. */
function doctored(name: string, edit: (t: Record<string, Tensor>) => Record<string, Tensor>): string {
  const p = path.join(tmp, name);
  writeSafetensors(p, edit(readAllFloat32(KOHYA)));
  return p;
}

test('bad LoRA files: one-line errors naming file and key, and the model is left unchanged', async () => {
  const ck = openCheckpoint(SD15, { loras: [{ path: PEFT, scale: 0.5 }] });
  const key = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight';
  const before = ck.unet().weights.source.read(key).data;
  const expectError = (specs: { path: string; scale?: number }[], cls: typeof FileFormatError | typeof InputError, re: RegExp): void => {
    assert.throws(() => ck.applyLoras(specs), (e: unknown) => e instanceof cls && re.test((e as Error).message) && !(e as Error).message.includes('\n'));
    assert.equal(ck.loras.length, 1, 'previous LoRAs kept');
    assert.equal(ck.loras[0]!.path, PEFT);
    assert.ok(bitsEqual(ck.unet().weights.source.read(key).data, before), 'weights unchanged');
  };
  // Keys that match no module: the file and a few of them are named.
  const unmatched = doctored('unmatched.safetensors', (t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k.replace('lora_unet_down_blocks_0_', 'lora_unet_down_blocks_9_'), v])));
  expectError([{ path: KOHYA }, { path: unmatched }], FileFormatError, /unmatched\.safetensors.*match no layer.*lora_unet_down_blocks_9_/);
  // A shape that does not fit: key, expected and actual.
  const badShape = doctored('shape.safetensors', (t) => ({ ...t, 'lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight': { shape: [4, 32, 1, 1], data: new Float32Array(128) } }));
  expectError([{ path: badShape }], FileFormatError, /\[lora_unet_down_blocks_0_resnets_0_conv1\.lora_down\.weight\].*shape \[4, 32, 1, 1\].*expected \[4, 32, 3, 3\]/);
  // A LoRA for another base model: SDXL's (second text encoder, other widths) on SD 1.5.
  expectError([{ path: KOHYA_XL }], FileFormatError, /lora_kohya_sdxl.*(text_encoder_2|another base model)/);
  // An SD 1.x LoRA on SD 2.x (proj_in is a Linear there, a 1x1 conv in SD 1.x): refused, nothing applied.
  const sd21 = openCheckpoint(modelDir('tiny-sd21'));
  assert.throws(() => sd21.applyLoras([{ path: KOHYA }]), /lora_kohya_sd15.*proj_in\.lora_down\.weight.*shape \[4, 32, 1, 1\].*expected \[4, 32\]/);
  assert.deepEqual(sd21.loras, []);
  // Unsupported adapter kinds, missing files, bad scales.
  const loha = doctored('loha.safetensors', (t) => ({ ...t, 'lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a': { shape: [4, 4], data: new Float32Array(16) } }));
  expectError([{ path: loha }], FileFormatError, /LoHa/);
  expectError([{ path: path.join(tmp, 'missing.safetensors') }], InputError, /not found/);
  expectError([{ path: KOHYA, scale: Number.NaN }], InputError, /finite/);
  assert.throws(() => parseLoraSpec(`${KOHYA}:abc`), /--lora scale must be a number/);
  assert.deepEqual(parseLoraSpec(`${KOHYA}:0.7`), { path: KOHYA, scale: 0.7 });
  assert.deepEqual(parseLoraSpec(KOHYA), { path: KOHYA });
  assert.deepEqual(parseLoraSpec('C:\\loras\\x.safetensors'), { path: 'C:\\loras\\x.safetensors' });
  // A set that fails validation holds no open files.
  assert.throws(() => LoraSet.load([{ path: unmatched }], () => undefined, 'model'), FileFormatError);
});

test('graphs add the low-rank terms to the stored weight: equal to fuse_lora bit for bit, folded by ONNX Runtime, names carry the LoRA fingerprint', async () => {
  const ck = openCheckpoint(SD15, { loras: [{ path: KOHYA, scale: 0.7 }] });
  const gold = golden('tiny-lora', 'merged_weights');
  const keys = ['down_blocks.0.resnets.0.conv1', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', 'down_blocks.0.downsamplers.0.conv'];
  const g = new Graph('lora_fold');
  const x = g.input('x', [1]);
  keys.forEach((k, i) => g.output(`w${i}`, op.add(param(g, ck.unet().weights.pp(k), 'weight'), op.mul(x, 0))));
  const names = [...g.initializers.keys()];
  const terms = names.filter((n) => /\.lora0\.(up|down)$/.test(n));
  assert.equal(terms.length, 6);
  assert.ok(terms.every((n) => /@[0-9a-f]{16}\//.test(n)), terms.join(', '));
  // The stored weights are referenced untransformed (ONNX Runtime reads them from the checkpoint when it can).
  assert.ok(names.filter((n) => n.endsWith('.weight')).every((n) => !n.includes('@')));
  const r = await runOnce(g, { x: { shape: [1], data: new Float32Array([1]) } });
  keys.forEach((k, i) => close(r[`w${i}`]!, gold[`kohya.unet.${k}.fused_weight`]!, 0, `${k} merged in the graph`));
  // Constant folding leaves no low-rank product in the optimized graph (its weights are the merged tensors).
  const cache = path.join(tmp, 'fold-cache');
  configureEngine({ graphCache: cache });
  try {
    await compile(`lora-fold-test:${tmp}`, () => g);
  } finally { configureEngine({ graphCache: undefined }); }
  const model = fs.readdirSync(cache).find((f) => f.endsWith('.onnx'))!;
  const proto = fs.readFileSync(path.join(cache, model)).toString('latin1');
  assert.ok(!proto.includes('MatMul') && !proto.includes('lora0'), 'low-rank terms folded');
  // read() merges in JavaScript to the same values, and is not a file location.
  const src = ck.unet().weights.source;
  close(src.read(`${keys[0]}.weight`), gold[`kohya.unet.${keys[0]}.fused_weight`]!, 0, 'read');
  assert.equal(src.location?.(`${keys[0]}.weight`), undefined);
  assert.ok(ck.unet().id.includes(':lora-') && !openCheckpoint(SD15).unet().id.includes('lora'));
});

test('CLI: --lora FILE:SCALE (repeatable) on generate, with a graph cache shared with a run without LoRA', () => {
  const m = meta('pipeline_multi');
  const g = golden('tiny-lora', 'pipeline_multi');
  const lat = path.join(tmp, 'lat.safetensors');
  writeSafetensors(lat, { latents: g.latents_in! });
  const cache = path.join(tmp, 'graph-cache');
  const args = (out: string, extra: string[]): string[] => [CLI, 'generate', '--model', SD15, '--prompt', m.prompt, '--negative-prompt', m.negative_prompt, '--steps', String(m.num_inference_steps),
    '--guidance', String(m.guidance_scale), '--width', String(m.width), '--height', String(m.height), '--latents', lat, '--save-latents', out, '--out', path.join(tmp, 'x.png'), '--quiet', '--graph-cache', cache, ...extra];
  execFileSync(process.execPath, args(path.join(tmp, 'base.safetensors'), []));
  execFileSync(process.execPath, args(path.join(tmp, 'multi.safetensors'), ['--lora', `${KOHYA}:${m.adapter_weights![0]}`, '--lora', `${PEFT}:${m.adapter_weights![1]}`]));
  const err = close(readAllFloat32(path.join(tmp, 'multi.safetensors')).latents!, g.final_latents!, 1e-4, 'CLI multi final latents');
  console.log(`CLI --lora x2 with graph cache: final latents ${err.toExponential(1)}`);
  const bad = spawnSync(process.execPath, args(path.join(tmp, 'bad.safetensors'), ['--lora', `${KOHYA_XL}:1`]), { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^error: .*lora_kohya_sdxl\.safetensors/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test('CLI: every sampling command takes --lora; invert with a LoRA differs from the base, and at scale 0 equals it', () => {
  for (const cmd of ['generate', 'vary', 'invert', 'inject', 'edit', 'fuse']) {
    const help = execFileSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' });
    assert.match(help, /--lora <file\[:scale\]>/, cmd);
  }
  const chain = (name: string, extra: string[]): Tensor => {
    const out = path.join(tmp, `${name}.safetensors`);
    execFileSync(process.execPath, [CLI, 'invert', '--model', SD15, '--image', goldenPath('tiny-sd15', 'inversion_input.png'), '--prompt', 'a fox', '--steps', '2',
      '--save-chain', out, '--quiet', ...extra]);
    return readAllFloat32(out).chain!;
  };
  const base = chain('inv-base', []);
  assert.ok(!bitsEqual(chain('inv-lora', ['--lora', `${KOHYA}:0.7`]).data, base.data));
  assert.ok(bitsEqual(chain('inv-zero', ['--lora', `${KOHYA}:0`]).data, base.data));
});
