/**
 * Where the memory of a session build goes: builds one full-size SD 1.5 part with random weights, creates
 * its ORT session with the engine's options (plus `--ort key=value` overrides), and prints RSS and peak RSS
 * after each stage. Run with `node --expose-gc dist/bench/memory-probe.js [--part unet|vae|text]
 * [--size 8] [--ort k=v ...] [--keep-js] [--from-files DIR]`; one configuration per process (peak RSS
 * only grows). `--from-files DIR`: write the model and its weights (one file per initializer, the ONNX
 * external-data layout) to DIR, drop the JS copies, and let ORT read the weights from disk (as it could
 * read them from a fp32 safetensors file at their offsets), so no JS copy exists during session creation.
 *
 * Stages: graph built (JS weights made) -> ONNX proto -> session created -> JS graph dropped + GC ->
 * first run -> session released + GC.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Config, type Json } from '../src/io/config.js';
import { WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, vaeDecode } from '../src/models/autoencoder-kl.js';
import { clipTextConfig, clipTextModel } from '../src/models/clip.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { numel } from '../src/tensor.js';
import { clipTextWeightTable, RandomWeights, unetWeightTable, vaeWeightTable } from './random-weights.js';

const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'unet' },
    size: { type: 'string', default: '8' },
    ort: { type: 'string', multiple: true },
    'keep-js': { type: 'boolean', default: false },
    'from-files': { type: 'string' },
  },
});
const size = Number(values.size);
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => { throw new Error('run with node --expose-gc'); });
const mib = (b: number): number => Math.round(b / 2 ** 20);
const t0 = performance.now();
function mark(stage: string): void {
  const rss = mib(process.memoryUsage().rss), peak = Math.round(process.resourceUsage().maxRSS / 1024);
  // anonymous memory (heap, arenas, copies) vs file-backed pages (mapped weight files, reclaimable)
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string): number => Math.round(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024);
  process.stdout.write(`${JSON.stringify({ stage, t_s: Math.round((performance.now() - t0) / 100) / 10, rss_mib: rss, peak_mib: peak, anon_mib: kb('RssAnon'), file_mib: kb('RssFile') })}\n`);
}

const raw = (o: Record<string, Json>, name: string): Config => new Config(`SD 1.5 ${name} (probe)`, o);
function build(part: string): { g: Graph; rw: RandomWeights; feeds: Record<string, ort.Tensor> } {
  const g = new Graph(part);
  if (part === 'unet') {
    const cfg = unetConfig(raw({
      attention_head_dim: 8, block_out_channels: [320, 640, 1280, 1280], cross_attention_dim: 768,
      down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
      up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'unet'));
    const rw = new RandomWeights('probe unet', unetWeightTable(cfg));
    const x = g.input('sample', [2, 4, size, size]), t = g.input('timestep', [2]), c = g.input('encoder_hidden_states', [2, 77, 768]);
    g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c }, new WeightsView(rw), cfg));
    const f = (shape: number[]): ort.Tensor => new ort.Tensor('float32', new Float32Array(numel(shape)).fill(0.1), shape);
    return { g, rw, feeds: { sample: f([2, 4, size, size]), timestep: new ort.Tensor('float32', Float32Array.from([981, 981]), [2]), encoder_hidden_states: f([2, 77, 768]) } };
  }
  if (part === 'vae') {
    const cfg = autoencoderConfig(raw({ block_out_channels: [128, 256, 512, 512], latent_channels: 4, layers_per_block: 2,
      down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D') }, 'vae'));
    const rw = new RandomWeights('probe vae', vaeWeightTable(cfg));
    const z = g.input('latents', [1, 4, size, size]);
    g.output('image', vaeDecode(op.div(z, cfg.scalingFactor), new WeightsView(rw), cfg));
    return { g, rw, feeds: { latents: new ort.Tensor('float32', new Float32Array(16 * size * size).fill(0.1), [1, 4, size, size]) } };
  }
  const cfg = clipTextConfig(raw({ hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, num_hidden_layers: 12,
    max_position_embeddings: 77, vocab_size: 49408, hidden_act: 'quick_gelu', projection_dim: 768 }, 'text_encoder'));
  const rw = new RandomWeights('probe text', clipTextWeightTable(cfg));
  g.output('h', clipTextModel(g.input('input_ids', [2, 77], 'int64'), new WeightsView(rw), cfg).lastHiddenState);
  return { g, rw, feeds: { input_ids: new ort.Tensor('int64', new BigInt64Array(154), [2, 77]) } };
}

function overrides(kvs: readonly string[]): Record<string, unknown> {
  const o: Record<string, unknown> = {}, extra: Record<string, string> = {};
  for (const kv of kvs) {
    const i = kv.indexOf('='), k = kv.slice(0, i), v = kv.slice(i + 1);
    if (k.includes('.')) extra[k] = v;
    else o[k] = v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v;
  }
  if (Object.keys(extra).length) o.extra = extra;
  return o;
}

async function main(): Promise<void> {
  mark('start');
  let built: ReturnType<typeof build> | undefined = build(values.part!);
  const weightMib = mib(built.rw.readBytes);
  process.stdout.write(`${JSON.stringify({ part: values.part, size, weights_mib: weightMib, ort: values.ort ?? [] })}\n`);
  mark('graph built');
  let model: ReturnType<typeof toOnnx> | undefined = toOnnx(built.g);
  mark('onnx proto');
  const so: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', ...overrides(values.ort ?? []) };
  const feeds = built.feeds;
  let session: ort.InferenceSession;
  const dir = values['from-files'];
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
    for (const e of model.externalData) fs.writeFileSync(path.join(dir, e.path), e.data);
    fs.writeFileSync(path.join(dir, 'model.onnx'), model.proto);
    built = undefined;
    model = undefined;
    gc(); gc();
    await new Promise((r) => setTimeout(r, 100));
    gc();
    mark('written to files, JS dropped + gc');
    // the model from bytes, its external data from the folder (as an engine would keep the proto in memory)
    session = await ort.InferenceSession.create(fs.readFileSync(path.join(dir, 'model.onnx')), { ...so, extra: { ...so.extra as object, 'session.model_external_initializers_file_folder_path': dir } });
  } else {
    session = await ort.InferenceSession.create(model.proto, { ...so, externalData: model.externalData });
  }
  mark('session created');
  if (!values['keep-js']) {
    built = undefined;
    model = undefined;
  }
  gc(); gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  mark(values['keep-js'] ? 'gc (JS graph kept)' : 'JS graph dropped + gc');
  await session.run(feeds);
  mark('first run');
  await session.release();
  gc();
  mark('session released + gc');
  if (built && model) process.stdout.write(''); // keep them alive to here with --keep-js
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
