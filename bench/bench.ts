/**
 * `npm run bench`: full-size Stable Diffusion 1.5 on this machine, with random weights (no download).
 *
 * Measures (each in a fresh child process, so peak RSS is per model):
 * - matmul_ceiling: one onnxruntime MatMul 4096x4096x4096 fp32 (B a constant, as model weights are);
 * - unet_step:      one UNet call at batch 2 on [2, 4, 64, 64] latents = one CFG step at 512x512;
 * - vae_decode:     one VAE decode of a [1, 4, 64, 64] latent;
 * - text_encode:    one CLIP ViT-L/14 text encoding of 2 prompts (77 tokens);
 * - tiny_sd15_t2i, tiny_sd21_t2i: the tiny test models end to end (4 DDIM steps, 64x64, CFG), a sanity line.
 *
 * Per measure: build_s = graph build + ORT session creation (the first `compile`), not counting the
 * generation of random weights (`weights_s`, which stands in for reading a checkpoint); first_call_s;
 * then `--runs` timed calls: median_s, min_s; gflops from an analytic count of 2*MACs of every
 * Conv / Gemm / MatMul in the built graph; peak_rss_mib = the child's maxRSS.
 *
 * Options: --json (one JSON object per line), --size N (latent size, default 64 = 512 px),
 * --only a,b (measures), --runs N, --threads N (ORT intra-op threads), --ort key=value (repeatable:
 * create sessions with extra ORT session options instead of the engine's defaults, e.g.
 * `--ort session.disable_prepacking=1 --ort enableMemPattern=false`; for investigations).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { openCheckpoint } from '../src/components/checkpoint.js';
import type { AttrValue, DType, Value } from '../src/graph/ir.js';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { CompiledGraph, compile, configureEngine, type Feed } from '../src/graph/session.js';
import { toOnnx } from '../src/graph/onnx.js';
import { CLIPTokenizer } from '../src/io/clip-tokenizer.js';
import { Config, type Json } from '../src/io/config.js';
import { WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, vaeDecode } from '../src/models/autoencoder-kl.js';
import { clipTextConfig, clipTextModel } from '../src/models/clip.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { hasNonFinite, numel, type Tensor } from '../src/tensor.js';
import { clipTextWeightTable, fillUniform, RandomWeights, unetWeightTable, vaeWeightTable } from './random-weights.js';

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '../..');
const TINY_MODELS = path.join(ROOT, 'test/fixtures/models');

// ---------------------------------------------------------------------------------------------
// SD 1.5 configs, as in runwayml/stable-diffusion-v1-5 (parsed by the project's own config readers).

const SD15_UNET: Record<string, Json> = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};

const SD15_VAE: Record<string, Json> = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

const SD15_TEXT: Record<string, Json> = {
  architectures: ['CLIPTextModel'],
  hidden_act: 'quick_gelu',
  hidden_size: 768,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  vocab_size: 49408,
  bos_token_id: 0,
  eos_token_id: 2,
  projection_dim: 768,
};

/** PyTorch CPU yardstick on this machine (../shared/DESIGN.md), seconds, and the issue's targets (ratio to it). */
const YARDSTICK: Record<string, { seconds: number; target?: number; what: string }> = {
  unet_step: { seconds: 18.2, target: 0.6, what: 'UNet CFG step at 512x512' },
  vae_decode: { seconds: 14.7, target: 1.0, what: 'VAE decode 64x64 latent' },
  text_encode: { seconds: 0.74, what: 'CLIP text, 2 prompts' },
};
const YARDSTICK_UNET_RSS_GIB = 5.9;
const YARDSTICK_UNET_GFLOPS = 88;

const CONTRACT = ['matmul_ceiling', 'unet_step', 'vae_decode', 'text_encode'] as const;
const TINY = ['tiny_sd15_t2i', 'tiny_sd21_t2i'] as const;
const MEASURES: readonly string[] = [...CONTRACT, ...TINY];

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  json: boolean;
  size: number;
  only: string[];
  runs?: number;
  threads?: number;
  ort: string[];
  child?: string;
}

const USAGE = `usage: npm run bench -- [--json] [--size N] [--only ${MEASURES.join(',')}] [--runs N] [--threads N] [--ort key=value ...]
  --size N      latent size (default 64 = 512x512 px; use 16 or 32 for a quick run); a multiple of 8
  --only a,b    run only these measures
  --runs N      timed calls per measure after the first (default: 3, text_encode 10, matmul_ceiling 5)
  --threads N   ORT intra-op threads (default: ORT's choice, all cores)
  --ort k=v     extra ORT session option for an investigation (enableMemPattern=false,
                enableCpuMemArena=false, graphOptimizationLevel=extended, session.disable_prepacking=1, ...)
  --json        one JSON object per line`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      size: { type: 'string', default: '64' },
      only: { type: 'string', multiple: true },
      runs: { type: 'string' },
      threads: { type: 'string' },
      ort: { type: 'string', multiple: true },
      child: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) { console.log(USAGE); process.exit(0); }
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const size = int('size', values.size, 8)!;
  if (size % 8 !== 0) fail(`--size must be a multiple of 8 (the UNet downsamples three times), got ${size}`);
  const only = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of only) if (!MEASURES.includes(m)) fail(`unknown measure ${JSON.stringify(m)} (expected one of ${MEASURES.join(', ')})`);
  for (const kv of values.ort ?? []) if (!/^[A-Za-z_.]+=.+$/.test(kv)) fail(`--ort expects key=value, got ${JSON.stringify(kv)}`);
  return {
    json: values.json!, size, only: only.length ? only : [...MEASURES],
    runs: int('runs', values.runs, 1), threads: int('threads', values.threads, 1), ort: values.ort ?? [], child: values.child,
  };
}

function fail(message: string): never {
  console.error(`bench: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Results

interface Result {
  // contract fields
  measure: string;
  median_s: number;
  min_s: number;
  gflops: number | null;
  peak_rss_mib: number;
  build_s: number | null;
  // extras
  first_call_s: number;
  runs: number;
  times_s: number[];
  flops: number | null;
  weights_s?: number;
  weight_mib?: number;
  params?: number;
  /** GFLOP/s of the fastest call. */
  gflops_at_min?: number | null;
  /** CPU seconds per wall second during the timed calls (about the thread count when the machine is quiet). */
  cpu_util?: number;
  /** The kernel's share of that CPU time (page faults of large fresh allocations show up here). */
  cpu_sys_fraction?: number;
  /** 1-minute load average when the measure started (other work on the machine skews timings). */
  loadavg_1m?: number;
  rss_after_build_mib?: number;
  peak_rss_after_build_mib?: number;
  finite?: boolean;
  size?: number;
  threads: number | 'default';
  ort_options?: string[];
  yardstick_s?: number;
  ratio?: number;
  target_ratio?: number;
  ceiling_fraction?: number;
  note?: string;
}

const LOAD_AT_START = os.loadavg()[0]!;
const now = (): number => performance.now() / 1000;
const mib = (bytes: number): number => bytes / 2 ** 20;
const peakRssMib = (): number => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
const rssMib = (): number => mib(process.memoryUsage().rss);
const round = (x: number, digits = 3): number => Number(x.toPrecision(digits + 2));

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// A Graph that remembers every value's shape, and the FLOP count of its Conv / Gemm / MatMul nodes.

class ShapeGraph extends Graph {
  readonly shapes = new Map<string, readonly number[]>();

  override node(op: string, inputs: readonly (Value | null)[], outs: readonly { shape: readonly number[]; dtype: DType }[], attrs: Record<string, AttrValue> = {}, domain = ''): Value[] {
    const values = super.node(op, inputs, outs, attrs, domain);
    for (const v of inputs) if (v) this.shapes.set(v.name, v.shape);
    for (const v of values) this.shapes.set(v.name, v.shape);
    return values;
  }

  shapeOf(name: string): readonly number[] {
    const s = this.shapes.get(name) ?? this.initializers.get(name)?.value.shape ?? this.inputs.find((v) => v.name === name)?.shape;
    if (!s) throw new Error(`FLOP count: no shape for ${name}`);
    return s;
  }
}

/** 2 * multiply-accumulates of every Conv, Gemm and MatMul (the work BLAS does; elementwise ops ignored). */
function countFlops(g: ShapeGraph): { total: number; byOp: Record<string, number> } {
  const byOp: Record<string, number> = {};
  for (const n of g.nodes) {
    let f = 0;
    if (n.op === 'Conv') {
      const w = g.shapeOf(n.inputs[1]!); // [OC, IC/groups, KH, KW]
      f = 2 * numel(g.shapeOf(n.outputs[0]!)) * w[1]! * w[2]! * w[3]!;
    } else if (n.op === 'MatMul') {
      const a = g.shapeOf(n.inputs[0]!);
      f = 2 * numel(g.shapeOf(n.outputs[0]!)) * a[a.length - 1]!;
    } else if (n.op === 'Gemm') {
      const a = g.shapeOf(n.inputs[0]!);
      f = 2 * numel(g.shapeOf(n.outputs[0]!)) * (n.attrs.transA ? a[0]! : a[1]!);
    } else continue;
    byOp[n.op] = (byOp[n.op] ?? 0) + f;
  }
  return { total: Object.values(byOp).reduce((s, f) => s + f, 0), byOp };
}

// ---------------------------------------------------------------------------------------------
// Sessions: the engine's compile cache, or (with --ort) a session with extra options.

function ortOverrides(kvs: readonly string[]): ort.InferenceSession.SessionOptions {
  const o: Record<string, unknown> = {};
  const extra: Record<string, string> = {};
  for (const kv of kvs) {
    const i = kv.indexOf('=');
    const k = kv.slice(0, i), v = kv.slice(i + 1);
    if (k.includes('.')) extra[k] = v;
    else if (v === 'true' || v === 'false') o[k] = v === 'true';
    else if (/^\d+$/.test(v)) o[k] = Number(v);
    else o[k] = v;
  }
  if (Object.keys(extra).length) o.extra = extra;
  return o as ort.InferenceSession.SessionOptions;
}

async function compileGraph(key: string, g: Graph, opts: Options): Promise<CompiledGraph> {
  if (!opts.ort.length) return compile(key, () => g);
  // The same options as src/graph/session.ts createSession, plus the overrides.
  const { proto, externalData } = toOnnx(g);
  const so: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', externalData, ...ortOverrides(opts.ort) };
  if (opts.threads) so.intraOpNumThreads = opts.threads;
  const session = await ort.InferenceSession.create(proto, so);
  return new CompiledGraph(session, g.inputs.map((v) => v.name), g.outputs.map((o) => o.name), new Map(g.inputs.map((v) => [v.name, v.shape])));
}

function randomTensor(shape: readonly number[], seed: number, bound = Math.sqrt(3)): Tensor {
  const data = new Float32Array(numel(shape));
  fillUniform(data, bound, seed);
  return { shape, data };
}

// ---------------------------------------------------------------------------------------------
// One measure of a graph: build, first call, timed calls.

interface GraphBench {
  measure: string;
  key: string;
  build(): ShapeGraph;
  sources: RandomWeights[];
  feeds: Record<string, Feed>;
  runs: number;
  size?: number;
  /** Key prefixes every key of which the graph must read (checks the weight tables against the builders). */
  mustRead?: { source: RandomWeights; prefix: string }[];
}

async function benchGraph(b: GraphBench, opts: Options): Promise<Result> {
  log(`${b.measure}: building the graph${b.sources.length ? ' (random weights)' : ''}`);
  const t0 = now();
  const g = b.build();
  const tGraph = now();
  const weightsS = b.sources.reduce((s, r) => s + r.generateSeconds, 0);
  log(`${b.measure}: graph ${g.nodes.length} nodes, ${g.initializers.size} initializers (${(tGraph - t0 - weightsS).toFixed(1)} s + ${weightsS.toFixed(1)} s random weights); creating the ORT session`);
  const compiled = await compileGraph(b.key, g, opts);
  const buildS = now() - t0 - weightsS;
  const rssAfterBuild = rssMib(), peakAfterBuild = peakRssMib();
  for (const { source, prefix } of b.mustRead ?? []) {
    const unread = source.unread(prefix);
    if (unread.length) log(`${b.measure}: WARNING ${unread.length} weights of the table were never read (table and builder disagree), e.g. ${unread.slice(0, 5).join(', ')}`);
  }
  const { total: flops } = countFlops(g);
  log(`${b.measure}: built in ${buildS.toFixed(1)} s (RSS ${rssAfterBuild.toFixed(0)} MiB); ${(flops / 1e9).toFixed(1)} GFLOP per call; first call`);

  const t1 = now();
  let out = await compiled.run(b.feeds);
  const first = now() - t1;
  log(`${b.measure}: first call ${first.toFixed(2)} s; ${b.runs} timed call(s)`);
  const times: number[] = [];
  const cpu0 = process.cpuUsage(), wall0 = now();
  for (let i = 0; i < b.runs; i++) {
    const t = now();
    out = await compiled.run(b.feeds);
    times.push(now() - t);
    log(`${b.measure}: call ${i + 1}/${b.runs} ${times[i]!.toFixed(2)} s`);
  }
  const cpu = process.cpuUsage(cpu0), wall = now() - wall0;
  const med = median(times);
  const weightBytes = b.sources.reduce((s, r) => s + r.readBytes, 0);
  return {
    measure: b.measure,
    median_s: round(med),
    min_s: round(Math.min(...times)),
    gflops: round(flops / med / 1e9),
    peak_rss_mib: Math.round(peakRssMib()),
    build_s: round(buildS),
    first_call_s: round(first),
    runs: b.runs,
    times_s: times.map((t) => round(t)),
    flops,
    gflops_at_min: round(flops / Math.min(...times) / 1e9),
    cpu_util: round((cpu.user + cpu.system) / 1e6 / wall, 2),
    cpu_sys_fraction: round(cpu.system / (cpu.user + cpu.system), 2),
    loadavg_1m: round(LOAD_AT_START, 2),
    ...(b.sources.length ? {
      weights_s: round(weightsS),
      weight_mib: Math.round(mib(weightBytes)),
      params: b.sources.reduce((s, r) => s + r.readBytes / 4, 0),
    } : {}),
    rss_after_build_mib: Math.round(rssAfterBuild),
    peak_rss_after_build_mib: Math.round(peakAfterBuild),
    finite: !Object.values(out).some(hasNonFinite),
    ...(b.size !== undefined ? { size: b.size } : {}),
    threads: opts.threads ?? 'default',
    ...(opts.ort.length ? { ort_options: opts.ort } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The measures (each runs in its own process).

function unetBench(opts: Options): GraphBench {
  const cfg = unetConfig(new Config('SD 1.5 unet/config.json (bench)', SD15_UNET));
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, b = 2, ctx = [b, 77, cfg.crossAttentionDim];
  return {
    measure: 'unet_step', key: `bench-unet:${s}`, sources: [rw], runs: opts.runs ?? 3, size: s,
    mustRead: [{ source: rw, prefix: '' }],
    // as src/components/unet.ts builds the plain (variant-free) UNet
    build: () => {
      const g = new ShapeGraph('unet');
      const x = g.input('sample', [b, cfg.inChannels, s, s]);
      const t = g.input('timestep', [b]);
      const c = g.input('encoder_hidden_states', ctx);
      g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c }, new WeightsView(rw), cfg));
      return g;
    },
    feeds: {
      sample: randomTensor([b, cfg.inChannels, s, s], 1),
      timestep: { shape: [b], data: Float32Array.from([981, 981]) },
      encoder_hidden_states: randomTensor(ctx, 2),
    },
  };
}

function vaeBench(opts: Options): GraphBench {
  const cfg = autoencoderConfig(new Config('SD 1.5 vae/config.json (bench)', SD15_VAE));
  const rw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(cfg));
  const s = opts.size, shape = [1, cfg.latentChannels, s, s];
  return {
    measure: 'vae_decode', key: `bench-vae-dec:${s}`, sources: [rw], runs: opts.runs ?? 3, size: s,
    mustRead: [{ source: rw, prefix: 'decoder.' }, { source: rw, prefix: 'post_quant_conv.' }],
    // as src/components/vae.ts decode builds it
    build: () => {
      const g = new ShapeGraph('vae_decoder');
      const z = g.input('latents', shape);
      g.output('image', vaeDecode(op.div(z, cfg.scalingFactor), new WeightsView(rw), cfg));
      return g;
    },
    feeds: { latents: randomTensor(shape, 3) },
  };
}

function textBench(opts: Options): GraphBench {
  const cfg = clipTextConfig(new Config('SD 1.5 text_encoder/config.json (bench)', SD15_TEXT));
  const rw = new RandomWeights('random CLIP ViT-L/14 text encoder', clipTextWeightTable(cfg));
  const tok = CLIPTokenizer.bundled();
  const prompts = ['', 'a photograph of an astronaut riding a horse on the moon, highly detailed, 8k'];
  const ids = prompts.flatMap((p) => tok.encode(p).input_ids);
  const shape = [prompts.length, tok.modelMaxLength];
  return {
    measure: 'text_encode', key: 'bench-text', sources: [rw], runs: opts.runs ?? 10,
    mustRead: [{ source: rw, prefix: '' }],
    // as src/components/text-encoder.ts builds it (clip skip 0)
    build: () => {
      const g = new ShapeGraph('clip_text');
      const out = clipTextModel(g.input('input_ids', shape, 'int64'), new WeightsView(rw), cfg);
      g.output('last_hidden_state', out.lastHiddenState);
      return g;
    },
    feeds: { input_ids: { int64: ids, shape } },
  };
}

function matmulBench(opts: Options): GraphBench {
  const n = 4096;
  return {
    measure: 'matmul_ceiling', key: `bench-matmul:${n}`, sources: [], runs: opts.runs ?? 5,
    build: () => {
      const g = new ShapeGraph('matmul');
      const a = g.input('a', [n, n]);
      g.output('c', op.matmul(a, g.weight('b', randomTensor([n, n], 5, 1 / Math.sqrt(n)))));
      return g;
    },
    feeds: { a: randomTensor([n, n], 4) },
  };
}

/** The tiny test models end to end: text-to-image, 4 DDIM steps, 64x64, guidance 7.5 (text, UNet x4, VAE). */
async function tinyBench(measure: string, opts: Options): Promise<Result> {
  const model = measure === 'tiny_sd21_t2i' ? 'tiny-sd21' : 'tiny-sd15';
  const ck = openCheckpoint(path.join(TINY_MODELS, model));
  const run = (): ReturnType<typeof textToImage> => textToImage(ck, {
    prompt: 'a photograph of an astronaut riding a horse', steps: 4, guidance: 7.5, width: 64, height: 64, noise: new NativeGaussian(0),
  });
  log(`${measure}: first run (load + compile + run)`);
  const t0 = now();
  let r = await run();
  const first = now() - t0;
  const runs = opts.runs ?? 3;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = now();
    r = await run();
    times.push(now() - t);
  }
  return {
    measure, median_s: round(median(times)), min_s: round(Math.min(...times)), gflops: null, peak_rss_mib: Math.round(peakRssMib()),
    build_s: null, first_call_s: round(first), runs, times_s: times.map((t) => round(t)), flops: null,
    finite: !hasNonFinite(r.latents), threads: opts.threads ?? 'default',
    note: `${model}: 4 DDIM steps, 64x64, CFG; first_call_s = cold (load + compile + run)`,
  };
}

async function runChild(measure: string, opts: Options): Promise<void> {
  if (opts.threads) configureEngine({ threads: opts.threads });
  let r: Result;
  switch (measure) {
    case 'unet_step': r = await benchGraph(unetBench(opts), opts); break;
    case 'vae_decode': r = await benchGraph(vaeBench(opts), opts); break;
    case 'text_encode': r = await benchGraph(textBench(opts), opts); break;
    case 'matmul_ceiling': r = await benchGraph(matmulBench(opts), opts); break;
    default: r = await tinyBench(measure, opts);
  }
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per measure, then the report.

function spawnMeasure(measure: string, argv: readonly string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...argv, '--child', measure], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('{'));
      if (code !== 0 || !line) {
        reject(new Error(`${measure}: child process ${signal ? `killed by ${signal}` : `exited with ${code}`}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}`));
        return;
      }
      resolve(JSON.parse(line) as Result);
    });
  });
}

function annotate(r: Result, ceiling: Result | undefined): Result {
  const y = YARDSTICK[r.measure];
  const out: Result = { ...r };
  if (y && (r.size === undefined || r.size === 64)) {
    out.yardstick_s = y.seconds;
    out.ratio = round(r.median_s / y.seconds);
    if (y.target !== undefined) out.target_ratio = y.target;
  }
  // The ceiling is the matmul's best call (a peak rate; its median suffers most from other work on the machine).
  const peak = ceiling?.gflops_at_min ?? ceiling?.gflops;
  if (peak && r.gflops !== null && r.measure !== 'matmul_ceiling') out.ceiling_fraction = round(r.gflops / peak);
  return out;
}

const fmtS = (s: number): string => (s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3)) + ' s';
const fmtGiB = (m: number): string => (m / 1024).toFixed(2) + ' GiB';

function describe(r: Result): string {
  const parts = [`${r.measure.padEnd(15)} ${fmtS(r.median_s)}`];
  if (r.yardstick_s !== undefined) {
    const verdict = r.target_ratio !== undefined ? (r.ratio! <= r.target_ratio ? `, target <= ${r.target_ratio}x met` : `, target <= ${r.target_ratio}x MISSED`) : '';
    parts.push(` (${r.ratio!.toFixed(2)}x PyTorch yardstick ${r.yardstick_s} s${verdict})`);
  }
  if (r.gflops !== null) {
    parts.push(`, ${r.gflops.toFixed(0)} GFLOP/s`);
    if (r.ceiling_fraction !== undefined) parts.push(` = ${r.ceiling_fraction.toFixed(2)} of the matmul ceiling`);
    if (r.measure === 'unet_step' && r.size === 64) parts.push(` (PyTorch ${YARDSTICK_UNET_GFLOPS})`);
  }
  parts.push(`; peak RSS ${fmtGiB(r.peak_rss_mib)}`);
  if (r.weight_mib) parts.push(` = ${(r.peak_rss_mib / r.weight_mib).toFixed(2)}x its fp32 weights (${fmtGiB(r.weight_mib)})`);
  if (r.measure === 'unet_step' && r.size === 64) parts.push(` (PyTorch ${YARDSTICK_UNET_RSS_GIB} GiB)`);
  if (r.build_s !== null) parts.push(`; build ${fmtS(r.build_s)} + first call ${fmtS(r.first_call_s)} = ${fmtS(r.build_s + r.first_call_s)}`);
  else parts.push(`; cold run ${fmtS(r.first_call_s)}`);
  if (r.gflops_at_min) parts.push(`; best call ${fmtS(r.min_s)} = ${r.gflops_at_min.toFixed(0)} GFLOP/s`);
  if (r.finite === false) parts.push(' [output not finite!]');
  const threads = r.threads === 'default' ? os.availableParallelism() : r.threads;
  if (r.cpu_util !== undefined && r.cpu_util < 0.85 * threads) parts.push(` [busy machine? ${r.cpu_util.toFixed(2)} CPU-s per s over ${threads} threads, load ${r.loadavg_1m}]`);
  return parts.join('');
}

function table(results: readonly Result[]): string {
  const head = ['measure', 'median', 'min', 'GFLOP/s', 'of ceiling', 'peak RSS', 'build', 'first call', 'vs PyTorch'];
  const rows = results.map((r) => [
    r.measure, fmtS(r.median_s), fmtS(r.min_s), r.gflops === null ? '-' : r.gflops.toFixed(0),
    r.ceiling_fraction === undefined ? '-' : r.ceiling_fraction.toFixed(2), fmtGiB(r.peak_rss_mib),
    r.build_s === null ? '-' : fmtS(r.build_s), fmtS(r.first_call_s), r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  if (opts.child) {
    await runChild(opts.child, opts);
    return;
  }
  const forwarded = argv.filter((a) => a !== '--json');
  const order = MEASURES.filter((m) => opts.only.includes(m));
  const results: Result[] = [];
  let ceiling: Result | undefined;
  let failed = false;
  if (!opts.json) {
    const threads = opts.threads ?? `ORT default (${os.availableParallelism()} cores)`;
    console.log(`visprompt bench: SD 1.5 fp32, random weights, onnxruntime-node ${ort.env.versions.common} cpu, intra-op threads ${threads}, latents ${opts.size}x${opts.size} (${opts.size * 8}x${opts.size * 8} px)${opts.ort.length ? `, ORT options ${opts.ort.join(' ')}` : ''}`);
  }
  for (const m of order) {
    let r: Result;
    try {
      r = await spawnMeasure(m, forwarded);
    } catch (e) {
      failed = true;
      console.error(`bench: ${(e as Error).message}`);
      continue;
    }
    if (m === 'matmul_ceiling') ceiling = r;
    r = annotate(r, ceiling);
    results.push(r);
    if (opts.json) console.log(JSON.stringify(r));
    else console.log(describe(r));
  }
  if (!opts.json && results.length) {
    console.log('');
    console.log(table(results));
    console.log(`\nPyTorch CPU yardstick (same machine): UNet CFG step 18.2 s (88 GFLOP/s, peak RSS 5.9 GiB), VAE decode 14.7 s, CLIP text 0.74 s.`);
    console.log('GFLOP/s = 2*MACs of Conv/Gemm/MatMul per median call; "of ceiling" = that over the matmul\'s best call.');
    console.log('Targets: UNet step <= 0.6x (about 11 s, >= 0.7 of the matmul ceiling), VAE decode <= 1.0x, whole-pipeline peak RSS <= 1.3x the fp32 weights of UNet+VAE+text encoder, build + first call < 60 s.');
  }
  if (failed) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(1);
});
