/**
 * `npm run bench`: full-size Stable Diffusion 1.5 on this machine, with random weights (no download).
 *
 * Measures (each in a fresh child process, so peak RSS is per model):
 * - matmul_ceiling: one onnxruntime MatMul 4096x4096x4096 fp32 (B a constant, as model weights are);
 * - unet_step:      one UNet call at batch 2 on [2, 4, 64, 64] latents = one CFG step at 512x512;
 * - vae_decode:     one VAE decode of a [1, 4, 64, 64] latent;
 * - text_encode:    one CLIP ViT-L/14 text encoding of 2 prompts (77 tokens);
 * - pipeline_t2i:   the whole text-to-image pipeline (text encoder, 2 DDIM steps with CFG, VAE decode) on a
 *                   Checkpoint of random weights in low-memory mode, as the CLI runs it: wall time, phases,
 *                   peak RSS against the fp32 weights of UNet + VAE + text encoder (`ratio`, target <= 1.3);
 * - vary_step_ratio: one denoising step of `vary` (InDetail-IP, 1 image, CFG: 3 UNet rows [uncond gen,
 *                   cond ref, cond gen]) against one plain CFG step (2 rows): `ratio` = vary / plain
 *                   (target <= 1.5), with Stratified-Attention weights and with concatenation weights
 *                   (one graph, the weights are inputs);
 * - controlnet_step_ratio: one CFG step (2 rows) with an SD 1.5 ControlNet fused into the UNet graph
 *                   against the plain step: `ratio` = controlnet / plain;
 * - taesd_decode_ratio: one tiny-VAE (TAESD, 64 channels, 4 stages) decode of a [1, 4, 64, 64] latent against
 *                   the full SD 1.5 VAE decode: `ratio` = TAESD / full VAE (the cost of --vae-tiny / previews);
 * - pipeline_t2i_disk: pipeline_t2i from a real diffusers folder of F32 .safetensors (random weights streamed
 *                   to a temp folder first, write_s, not measured): openCheckpoint + textToImage in a fresh child,
 *                   F32 weights read by ORT from the files; build_s = UNet build; folder deleted afterwards;
 * - pno_iteration:  one PNO loss + gradient (SD 1.5 UNet + VAE, random weights; tiny CLIP tower), one line per
 *                   mode (checkpointing true / false) at latents min(--size, 32), plus checkpointed at 64 when
 *                   --size is 64 (killed, and reported as an error line, if its RSS passes 20 GiB);
 * - tiny_sd15_t2i, tiny_sd21_t2i: the tiny test models end to end (4 DDIM steps, 64x64, CFG), a sanity line.
 *
 * In the two *_ratio measures both graphs live in one process and their timed calls alternate (so load
 * from other work on the machine hits both alike); their peak RSS holds both sessions.
 *
 * Per measure: build_s = graph build + ORT session creation (the first `compile`), not counting the
 * generation of random weights (`weights_s`, which stands in for reading a checkpoint); first_call_s;
 * then `--runs` timed calls: median_s, min_s; gflops from an analytic count of 2*MACs of every
 * Conv / Gemm / MatMul in the built graph; peak_rss_mib = the child's maxRSS.
 *
 * Options: --json (one JSON object per line), --size N (latent size, default 64 = 512 px),
 * --only a,b (measures), --runs N, --threads N (ORT intra-op threads), --ort key=value (repeatable:
 * create sessions with extra ORT session options instead of the engine's defaults, e.g.
 * `--ort session.disable_prepacking=1 --ort enableMemPattern=false`; for investigations), --ort-from-files
 * (investigation: sessions read their weights from files and no JS copy is alive while ORT builds them).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import ort from 'onnxruntime-node';
import { Checkpoint, openCheckpoint, type ComponentSource } from '../src/components/checkpoint.js';
import { ControlNet, controlNetFeeds, controlNetVariant, type PreparedControl } from '../src/components/controlnet.js';
import type { UNetVariant } from '../src/components/unet.js';
import type { AttrValue, DType, Value } from '../src/graph/ir.js';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { CompiledGraph, compile, configureEngine, type Feed } from '../src/graph/session.js';
import { toOnnx } from '../src/graph/onnx.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { CLIPTokenizer } from '../src/io/clip-tokenizer.js';
import { Config, type Json } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, vaeDecode } from '../src/models/autoencoder-kl.js';
import { autoencoderTinyConfig, tinyDecode } from '../src/models/autoencoder-tiny.js';
import { TAESD_CONFIG, taesdWeightTable } from './taesd-weights.js';
import { clipTextConfig, clipTextModel } from '../src/models/clip.js';
import { controlNetConfig } from '../src/models/controlnet.js';
import { unet2DConditionModel, unetConfig, type UNet2DConditionConfig } from '../src/models/unet2d-condition.js';
import { createMethod } from '../src/methods/index.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { pnoLossAndGrads } from '../src/methods/vcf/pno.js';
import { layoutKey, referenceAttentionHooks, weightFeeds, type ReferenceLayout } from '../src/methods/reference-attention.js';
import { createNoise, NativeGaussian } from '../src/noise/gaussian.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { rowLayout } from '../src/pipelines/vary.js';
import { hasNonFinite, numel, type Tensor } from '../src/tensor.js';
import { clipTextWeightTable, controlNetWeightTable, fillUniform, RandomWeights, unetWeightTable, vaeWeightTable, writeRandomSafetensors } from './random-weights.js';

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

/** unet/config.json of stable-diffusion-xl-base-1.0 (2.6 B parameters). */
const SDXL_UNET: Record<string, Json> = {
  _class_name: 'UNet2DConditionModel',
  addition_embed_type: 'text_time',
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  cross_attention_dim: 2048,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  in_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  sample_size: 128,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  use_linear_projection: true,
};

/** diffusers' ControlNetModel config of the SD 1.5 ControlNets (lllyasviel/sd-controlnet-*): the UNet's encoder. */
const SD15_CONTROLNET: Record<string, Json> = {
  ...Object.fromEntries(Object.entries(SD15_UNET).filter(([k]) => !['_class_name', 'out_channels', 'sample_size', 'up_block_types'].includes(k))),
  _class_name: 'ControlNetModel',
  conditioning_channels: 3,
  conditioning_embedding_out_channels: [16, 32, 96, 256],
  controlnet_conditioning_channel_order: 'rgb',
};

/** scheduler/scheduler_config.json of SD 1.5, as DDIM. */
const SD15_SCHEDULER: Record<string, Json> = {
  _class_name: 'DDIMScheduler',
  num_train_timesteps: 1000,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
  set_alpha_to_one: false,
  clip_sample: false,
  prediction_type: 'epsilon',
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
const WHOLE = ['pipeline_t2i', 'vary_step_ratio', 'controlnet_step_ratio', 'taesd_decode_ratio'] as const;
const FILES = ['pipeline_t2i_disk', 'pno_iteration'] as const;
const TINY = ['tiny_sd15_t2i', 'tiny_sd21_t2i'] as const;
/** SDXL at twice the latent size of --size (default 128 = 1024x1024): heavy, about 10 GiB of weights. */
const SDXL = ['unet_step_sdxl'] as const;
const MEASURES: readonly string[] = [...CONTRACT, ...WHOLE, ...FILES, ...TINY, ...SDXL];

/** Targets of the issue for the measures that compare with something else than the PyTorch yardstick (judged at --size 64). */
const RATIO_TARGET: Record<string, number> = { pipeline_t2i: 1.3, pipeline_t2i_disk: 1.3, vary_step_ratio: 1.5 };

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  json: boolean;
  size: number;
  only: string[];
  runs?: number;
  /** DDIM steps of pipeline_t2i. */
  steps: number;
  threads?: number;
  ort: string[];
  /** Sessions read their weights from files (see patchSessionCreate). */
  ortFromFiles: boolean;
  child?: string;
}

const USAGE = `usage: npm run bench -- [--json] [--size N] [--only ${MEASURES.join(',')}] [--runs N] [--threads N] [--ort key=value ...]
  --size N      latent size (default 64 = 512x512 px; use 16 or 32 for a quick run); a multiple of 8
  --only a,b    run only these measures
  --runs N      timed calls per measure after the first (default: 3, text_encode 10, matmul_ceiling 5;
                the *_ratio measures: N calls of each graph, alternating; pipeline_t2i: one cold run)
  --steps N     DDIM steps of pipeline_t2i (default 2)
  --threads N   ORT intra-op threads (default: ORT's choice, all cores)
  --ort k=v     extra ORT session option for an investigation (enableMemPattern=false,
                enableCpuMemArena=false, graphOptimizationLevel=extended, session.disable_prepacking=1, ...)
  --ort-from-files  investigation: sessions read their weights from files (temporary folder) and the JS
                copies are freed before the session is built (the peak of an engine that kept none)
  --json        one JSON object per line`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      size: { type: 'string', default: '64' },
      only: { type: 'string', multiple: true },
      runs: { type: 'string' },
      steps: { type: 'string', default: '2' },
      threads: { type: 'string' },
      ort: { type: 'string', multiple: true },
      'ort-from-files': { type: 'boolean', default: false },
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
    runs: int('runs', values.runs, 1), steps: int('steps', values.steps, 1)!, threads: int('threads', values.threads, 1), ort: values.ort ?? [], ortFromFiles: values['ort-from-files']!, child: values.child,
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
  // pipeline_t2i
  /** fp32 bytes (MiB) of every parameter of UNet + VAE + text encoder. */
  weights_mib?: number;
  /** fp32 bytes (MiB) of the weights the pipeline read. */
  weights_read_mib?: number;
  steps?: number;
  phases_s?: Record<string, number>;
  step_times_s?: number[];
  phase_rss_mib?: Record<string, { rss: number; peak: number }>;
  // *_ratio measures: the measured graph against the plain CFG step
  rows?: number;
  baseline_rows?: number;
  baseline_median_s?: number;
  baseline_min_s?: number;
  baseline_gflops?: number;
  baseline_build_s?: number;
  concat_median_s?: number;
  concat_min_s?: number;
  concat_ratio?: number;
  /** Graphs built for the vary variant (1: both weight sets share one graph). */
  variant_graphs_built?: number;
  // pipeline_t2i_disk
  /** Seconds to write the random checkpoint folder (not part of the measure). */
  write_s?: number;
  write_mib?: number;
  /** ORT session creations in the child: input names (abridged) and seconds of InferenceSession.create. */
  sessions?: { inputs: string; create_s: number }[];
  /** UNet: ORT InferenceSession.create alone. */
  unet_create_s?: number;
  // pno_iteration
  mode?: 'checkpointed' | 'whole_graph';
  loss?: number;
  grad_z_norm?: number;
  grad_c_norm?: number;
  /** Wall seconds of the timed call minus the ORT session creations in it (an estimate of a warm iteration). */
  wall_minus_create_s?: number;
  error?: string;
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

/** 2 * multiply-accumulates of every Conv, Gemm, MatMul and fused attention (the work BLAS does; elementwise ops ignored). */
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
    } else if (n.op === 'MultiHeadAttention') {
      // q [B, S, H*d], k [B, L, H*d], v [B, L, H*dv]: Q K^T and P V per head
      const [b, sq, dq] = g.shapeOf(n.inputs[0]!) as [number, number, number];
      const [, l] = g.shapeOf(n.inputs[1]!) as [number, number, number];
      const dv = g.shapeOf(n.inputs[2]!)[2]!;
      f = 2 * b * sq * l * (dq + dv);
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

const ortOptionsField = (opts: Options): { ort_options?: string[] } => (opts.ort.length || opts.ortFromFiles ? { ort_options: [...opts.ort, ...(opts.ortFromFiles ? ['--ort-from-files'] : [])] } : {});

function randomTensor(shape: readonly number[], seed: number, bound = Math.sqrt(3)): Tensor {
  const data = new Float32Array(numel(shape));
  fillUniform(data, bound, seed);
  return { shape, data };
}

// ---------------------------------------------------------------------------------------------
// One measure of a graph: build, first call, timed calls.

/** Key prefixes every key of which the graph must read (checks the weight tables against the builders). */
type MustRead = readonly { source: RandomWeights; prefix: string }[];

interface GraphBench {
  measure: string;
  key: string;
  build(): ShapeGraph;
  sources: RandomWeights[];
  feeds: Record<string, Feed>;
  runs: number;
  size?: number;
  /** Key prefixes every key of which the graph must read (checks the weight tables against the builders). */
  mustRead?: MustRead;
}

/** A graph with its session, and what building it cost. */
interface Prepared {
  compiled: CompiledGraph;
  flops: number;
  buildS: number;
  weightsS: number;
  rssAfterBuild: number;
  peakAfterBuild: number;
}

/**
 * Build a graph and create its session. The graph (and the JS copies of its weights) is local here, so
 * it is garbage once the session exists: only ORT's copy stays for the timed calls.
 */
async function prepare(label: string, key: string, build: () => ShapeGraph, sources: readonly RandomWeights[], opts: Options, mustRead: MustRead = []): Promise<Prepared> {
  const generated = (): number => sources.reduce((s, r) => s + r.generateSeconds, 0);
  log(`${label}: building the graph${sources.length ? ' (random weights)' : ''}`);
  const gen0 = generated();
  const t0 = now();
  const g = build();
  const tGraph = now();
  const weightsS = generated() - gen0;
  log(`${label}: graph ${g.nodes.length} nodes, ${g.initializers.size} initializers (${(tGraph - t0 - weightsS).toFixed(1)} s + ${weightsS.toFixed(1)} s random weights); creating the ORT session`);
  const compiled = await compileGraph(key, g, opts);
  const buildS = now() - t0 - weightsS;
  const rssAfterBuild = rssMib(), peakAfterBuild = peakRssMib();
  for (const { source, prefix } of mustRead) {
    const unread = source.unread(prefix);
    if (unread.length) log(`${label}: WARNING ${unread.length} weights of the table were never read (table and builder disagree), e.g. ${unread.slice(0, 5).join(', ')}`);
  }
  const { total: flops } = countFlops(g);
  log(`${label}: built in ${buildS.toFixed(1)} s (RSS ${rssAfterBuild.toFixed(0)} MiB, peak ${peakAfterBuild.toFixed(0)} MiB); ${(flops / 1e9).toFixed(1)} GFLOP per call`);
  return { compiled, flops, buildS, weightsS, rssAfterBuild, peakAfterBuild };
}

async function benchGraph(b: GraphBench, opts: Options): Promise<Result> {
  const { compiled, flops, buildS, weightsS, rssAfterBuild, peakAfterBuild } = await prepare(b.measure, b.key, b.build, b.sources, opts, b.mustRead);
  log(`${b.measure}: first call`);
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
    ...ortOptionsField(opts),
  };
}

// ---------------------------------------------------------------------------------------------
// The measures (each runs in its own process).

const sd15UnetConfig = (): UNet2DConditionConfig => unetConfig(new Config('SD 1.5 unet/config.json (bench)', SD15_UNET));

/**
 * The UNet graph as src/components/unet.ts `UNet.run` builds it for a text-conditioned UNet: inputs
 * sample / timestep / encoder_hidden_states, then the variant's hooks (which declare its extra inputs).
 */
function unetGraph(cfg: UNet2DConditionConfig, vb: WeightsView, b: number, s: number, variant?: UNetVariant): ShapeGraph {
  const g = new ShapeGraph('unet');
  const x = g.input('sample', [b, cfg.inChannels, s, s]);
  const t = g.input('timestep', [b]);
  const c = g.input('encoder_hidden_states', [b, 77, cfg.crossAttentionDim]);
  const hooks = variant?.hooks(g, b, { sample: x, timestep: t, encoderHiddenStates: c });
  g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c }, vb, cfg, hooks));
  return g;
}

/** The UNet's own feeds for `b` rows at timestep 981 (the first of 50 DDIM steps). */
function unetFeeds(cfg: UNet2DConditionConfig, b: number, s: number): Record<string, Feed> {
  return {
    sample: randomTensor([b, cfg.inChannels, s, s], 1),
    timestep: { shape: [b], data: new Float32Array(b).fill(981) },
    encoder_hidden_states: randomTensor([b, 77, cfg.crossAttentionDim], 2),
  };
}

function unetBench(opts: Options): GraphBench {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, b = 2;
  return {
    measure: 'unet_step', key: `bench-unet:${s}`, sources: [rw], runs: opts.runs ?? 3, size: s,
    mustRead: [{ source: rw, prefix: '' }],
    build: () => unetGraph(cfg, new WeightsView(rw), b, s), // the plain (variant-free) UNet
    feeds: unetFeeds(cfg, b, s),
  };
}

/**
 * SDXL UNet CFG step (batch 2) at latent 2 x --size (128 = 1024x1024 px by default), random weights.
 * The 10 GiB of weights are streamed to a temporary F32 .safetensors file and read by ONNX Runtime from
 * there (as from a real checkpoint), so the process holds one copy (ORT's), not two.
 */
function unetSdxlBench(opts: Options): { bench: GraphBench; cleanup: () => void } {
  const cfg = unetConfig(new Config('SDXL unet/config.json (bench)', SDXL_UNET));
  const s = opts.size * 2, b = 2;
  const pooled = cfg.addition!.inputDim - 6 * cfg.addition!.timeEmbedDim;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-bench-sdxl-'));
  log(`unet_step_sdxl: writing random weights to ${dir}`);
  writeRandomSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), unetWeightTable(cfg));
  const weights = new WeightsView(openComponentWeights(dir));
  const px = s * 8;
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  // a killed run (timeout) must not leave 10 GiB behind in the temp folder
  process.once('SIGTERM', () => { cleanup(); process.exit(143); });
  return {
    cleanup,
    bench: {
      measure: 'unet_step_sdxl', key: `bench-unet-sdxl:${s}`, sources: [], runs: opts.runs ?? 1, size: s,
      build: () => {
        const g = new ShapeGraph('unet');
        const x = g.input('sample', [b, cfg.inChannels, s, s]);
        const t = g.input('timestep', [b]);
        const c = g.input('encoder_hidden_states', [b, 77, cfg.crossAttentionDim]);
        const addedCond = { textEmbeds: g.input('text_embeds', [b, pooled]), timeIds: g.input('time_ids', [b, 6]) };
        g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c, addedCond }, weights, cfg));
        return g;
      },
      feeds: {
        ...unetFeeds(cfg, b, s),
        text_embeds: randomTensor([b, pooled], 3),
        time_ids: { shape: [b, 6], data: Float32Array.from([px, px, 0, 0, px, px, px, px, 0, 0, px, px]) },
      },
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

// ---------------------------------------------------------------------------------------------
// Ratio measures: two graphs in one process, their timed calls alternating.

/** One graph of a ratio measure, with one or more feed sets (each timed on its own). */
interface Arm {
  label: string;
  key: string;
  /** UNet rows (batch) of the graph. */
  rows: number;
  sources: RandomWeights[];
  mustRead?: MustRead;
  build(): ShapeGraph;
  feeds: Record<string, Record<string, Feed>>;
}

interface TimedArm {
  prepared: Prepared;
  /** First (untimed) call of each feed set, seconds. */
  first: Record<string, number>;
  /** Timed calls of each feed set, seconds. */
  times: Record<string, number[]>;
  finite: boolean;
}

interface Timed {
  arms: TimedArm[];
  cpuUtil: number;
  cpuSys: number;
}

/**
 * Build every arm (in order: the bigger graph first, so the second build's transient JS weights sit next to
 * one session rather than two), one untimed first call per feed set, then `runs` rounds of one call per
 * feed set of every arm.
 */
async function timeArms(measure: string, arms: readonly Arm[], runs: number, opts: Options): Promise<Timed> {
  const out: TimedArm[] = [];
  for (const a of arms) {
    const prepared = await prepare(`${measure} ${a.label}`, a.key, a.build, a.sources, opts, a.mustRead);
    const first: Record<string, number> = {};
    let finite = true;
    for (const [name, feeds] of Object.entries(a.feeds)) {
      const t = now();
      const r = await prepared.compiled.run(feeds);
      first[name] = now() - t;
      finite &&= !Object.values(r).some(hasNonFinite);
      log(`${measure} ${a.label}/${name}: first call ${first[name]!.toFixed(2)} s`);
    }
    out.push({ prepared, first, times: Object.fromEntries(Object.keys(a.feeds).map((k) => [k, []])), finite });
  }
  const cpu0 = process.cpuUsage(), wall0 = now();
  for (let i = 0; i < runs; i++) {
    for (const [j, a] of arms.entries()) {
      for (const [name, feeds] of Object.entries(a.feeds)) {
        const t = now();
        const r = await out[j]!.prepared.compiled.run(feeds);
        const dt = now() - t;
        out[j]!.times[name]!.push(dt);
        out[j]!.finite &&= !Object.values(r).some(hasNonFinite);
        log(`${measure} ${a.label}/${name}: call ${i + 1}/${runs} ${dt.toFixed(2)} s`);
      }
    }
  }
  const cpu = process.cpuUsage(cpu0), wall = now() - wall0;
  return { arms: out, cpuUtil: (cpu.user + cpu.system) / 1e6 / wall, cpuSys: cpu.system / (cpu.user + cpu.system) };
}

/** The result line of a ratio measure: the measured graph's feed set `main` against the baseline arm's. */
function ratioResult(measure: string, timed: Timed, arms: readonly Arm[], main: string, runs: number, opts: Options, extra: Partial<Result>): Result {
  const [m, base] = timed.arms as [TimedArm, TimedArm];
  const mt = m.times[main]!, bt = Object.values(base.times)[0]!;
  const med = median(mt), bmed = median(bt);
  const weightBytes = new Set(arms.flatMap((a) => a.sources)).values();
  let bytes = 0;
  for (const r of weightBytes) bytes += r.readBytes;
  return {
    measure,
    median_s: round(med),
    min_s: round(Math.min(...mt)),
    gflops: round(m.prepared.flops / med / 1e9),
    peak_rss_mib: Math.round(peakRssMib()),
    build_s: round(m.prepared.buildS),
    first_call_s: round(m.first[main]!),
    runs,
    times_s: mt.map((t) => round(t)),
    flops: m.prepared.flops,
    gflops_at_min: round(m.prepared.flops / Math.min(...mt) / 1e9),
    cpu_util: round(timed.cpuUtil, 2),
    cpu_sys_fraction: round(timed.cpuSys, 2),
    loadavg_1m: round(LOAD_AT_START, 2),
    weights_s: round(m.prepared.weightsS + base.prepared.weightsS),
    weight_mib: Math.round(mib(bytes)),
    rss_after_build_mib: Math.round(base.prepared.rssAfterBuild),
    peak_rss_after_build_mib: Math.round(base.prepared.peakAfterBuild),
    finite: m.finite && base.finite,
    size: opts.size,
    threads: opts.threads ?? 'default',
    ...ortOptionsField(opts),
    ratio: round(med / bmed),
    ...(RATIO_TARGET[measure] !== undefined && opts.size === 64 ? { target_ratio: RATIO_TARGET[measure] } : {}),
    rows: arms[0]!.rows,
    baseline_rows: arms[1]!.rows,
    baseline_median_s: round(bmed),
    baseline_min_s: round(Math.min(...bt)),
    baseline_gflops: round(base.prepared.flops / bmed / 1e9),
    baseline_build_s: round(base.prepared.buildS),
    ...extra,
  };
}

/** The plain CFG step (2 rows), the baseline of both ratio measures; the UNet weights are `rw`. */
function plainArm(cfg: UNet2DConditionConfig, rw: RandomWeights, s: number): Arm {
  return {
    label: 'plain', key: `bench-unet:${s}`, rows: 2, sources: [rw],
    build: () => unetGraph(cfg, new WeightsView(rw), 2, s),
    feeds: { plain: unetFeeds(cfg, 2, s) },
  };
}

/**
 * vary's UNet call (src/pipelines/vary.ts) for InDetail-IP, one image, CFG (conflict-free guidance):
 * rows [gen_uncond, ref_cond, gen_cond]; the reference attention variant and its weight feeds as vary
 * builds them; the weights of step 0 (Stratified Attention) and of the last step (concatenation).
 */
async function varyStepRatio(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, steps = 50, runs = opts.runs ?? 3;
  const method = createMethod('indetail-ip', steps);
  const { rows: layout, referenceOf } = rowLayout(true, method.guidanceMode === 'conflicting', 1);
  const refLayout: ReferenceLayout = { referenceOf, layer: method.layer, queryKeyAdain: method.queryKeyAdain, scoreShift: method.scoreShift };
  let builds = 0;
  const variant: UNetVariant = {
    key: `${method.key}:${layoutKey(refLayout, '')}`,
    hooks: (g) => { builds++; return referenceAttentionHooks(g, refLayout); },
  };
  const b = layout.length;
  const feedsAt = (index: number): Record<string, Feed> => {
    const w = method.weights({ index, timestep: 981, steps });
    const perRow = layout.filter((_, j) => referenceOf[j] !== null).map((r) => (r.branch === 'cond' ? w.cond : w.uncond));
    return { ...unetFeeds(cfg, b, s), ...weightFeeds(perRow) };
  };
  const arms: Arm[] = [
    {
      label: 'vary', key: `bench-unet-vary:${s}:${variant.key}`, rows: b, sources: [rw], mustRead: [{ source: rw, prefix: '' }],
      build: () => unetGraph(cfg, new WeightsView(rw), b, s, variant),
      feeds: { stratified: feedsAt(0), concat: feedsAt(steps - 1) },
    },
    plainArm(cfg, rw, s),
  ];
  const timed = await timeArms('vary_step_ratio', arms, runs, opts);
  const ct = timed.arms[0]!.times.concat!;
  const bmed = median(Object.values(timed.arms[1]!.times)[0]!);
  return ratioResult('vary_step_ratio', timed, arms, 'stratified', runs, opts, {
    concat_median_s: round(median(ct)),
    concat_min_s: round(Math.min(...ct)),
    concat_ratio: round(median(ct) / bmed),
    variant_graphs_built: builds,
    note: `InDetail-IP (${method.key}), 1 image, CFG: rows [${layout.map((r) => `${r.kind}_${r.branch}`).join(', ')}] vs the plain CFG step [uncond, cond]; median_s/ratio: Stratified-Attention weights (step 0), concat_*: concatenation weights (step ${steps - 1}), same session`,
  });
}

/** One SD 1.5 ControlNet fused into the UNet graph (text-to-image with --control), 2 rows, against the plain step. */
async function controlNetStepRatio(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const cnCfg = controlNetConfig(new Config('SD 1.5 ControlNet config.json (bench)', SD15_CONTROLNET));
  const cnw = new RandomWeights('random SD 1.5 ControlNet', controlNetWeightTable(cnCfg));
  const s = opts.size, b = 2, runs = opts.runs ?? 3;
  const image = randomTensor([1, 3, 8 * s, 8 * s], 6, 0.5);
  for (let i = 0; i < image.data.length; i++) image.data[i] += 0.5; // [0, 1] as a control image
  const controls: PreparedControl[] = [{ net: new ControlNet(cnCfg, new WeightsView(cnw), 'bench-controlnet'), image, scale: 1 }];
  const variant = controlNetVariant(controls)!;
  const arms: Arm[] = [
    {
      label: 'controlnet', key: `bench-unet-cn:${s}:${variant.key}`, rows: b, sources: [rw, cnw],
      mustRead: [{ source: rw, prefix: '' }, { source: cnw, prefix: '' }],
      build: () => unetGraph(cfg, new WeightsView(rw), b, s, variant),
      feeds: { controlnet: { ...unetFeeds(cfg, b, s), ...controlNetFeeds(controls, () => 1, b) } },
    },
    plainArm(cfg, rw, s),
  ];
  const timed = await timeArms('controlnet_step_ratio', arms, runs, opts);
  return ratioResult('controlnet_step_ratio', timed, arms, 'controlnet', runs, opts, {
    params: cnw.parameterCount,
    note: `one SD 1.5 ControlNet (${(cnw.parameterCount / 1e6).toFixed(0)} M parameters) in the UNet graph, CFG (2 rows) vs the plain CFG step; params = the ControlNet's`,
  });
}

/** The tiny VAE's decode (src/components/vae-tiny.ts) against the full VAE's (vae_decode), same latent. */
async function taesdDecodeRatio(opts: Options): Promise<Result> {
  const tcfg = autoencoderTinyConfig(new Config('madebyollin/taesd config.json (bench)', TAESD_CONFIG));
  const trw = new RandomWeights('random TAESD', taesdWeightTable(tcfg));
  const full = vaeBench(opts);
  const shape = [1, tcfg.latentChannels, opts.size, opts.size];
  const arms: Arm[] = [
    {
      label: 'taesd', key: `bench-taesd-dec:${opts.size}`, rows: 1, sources: [trw], mustRead: [{ source: trw, prefix: 'decoder.' }],
      build: () => {
        const g = new ShapeGraph('taesd_decoder');
        g.output('image', tinyDecode(op.div(g.input('latents', shape), tcfg.scalingFactor), new WeightsView(trw), tcfg));
        return g;
      },
      feeds: { taesd: full.feeds },
    },
    { label: 'vae', key: full.key, rows: 1, sources: full.sources, mustRead: full.mustRead, build: full.build, feeds: { vae: full.feeds } },
  ];
  const runs = opts.runs ?? 3;
  const timed = await timeArms('taesd_decode_ratio', arms, runs, opts);
  return ratioResult('taesd_decode_ratio', timed, arms, 'taesd', runs, opts, {
    params: trw.parameterCount,
    note: `the TAESD decoder (TAESD: ${(trw.parameterCount / 1e6).toFixed(1)} M parameters, encoder + decoder) vs the SD 1.5 VAE decoder, one [1, 4, ${opts.size}, ${opts.size}] latent; baseline_* = the full VAE`,
  });
}

// ---------------------------------------------------------------------------------------------
// The whole pipeline on a Checkpoint of random weights.

/**
 * Investigations (memory): with --ort, every session the engine creates gets the extra options; with
 * --ort-from-files, sessions read their external weights from files written to a temporary folder, and
 * the JS copies are detached (freed) before ORT builds the session: what an engine that handed ORT
 * file-backed weights (an fp32 safetensors file at its offsets) and kept no JS copy would peak at.
 */
function patchSessionCreate(opts: Options): void {
  if (!opts.ort.length && !opts.ortFromFiles) return;
  const extra = ortOverrides(opts.ort);
  type Create = (model: string | Uint8Array, so?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  const factory = ort.InferenceSession as unknown as { create: Create };
  const create = factory.create.bind(factory);
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  factory.create = async (model, so = {}) => {
    const merged: ort.InferenceSession.SessionOptions & { extra: Record<string, unknown> } = { ...so, ...extra, extra: { ...so.extra, ...extra.extra } };
    const external = so.externalData as readonly { path: string; data: Uint8Array }[] | undefined;
    if (!opts.ortFromFiles || !external?.length) return create(model, merged);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-bench-'));
    try {
      for (const e of external) fs.writeFileSync(path.join(dir, e.path), e.data);
      for (const e of external) {
        const buf = e.data.buffer;
        if (buf instanceof ArrayBuffer && buf.byteLength) structuredClone(buf, { transfer: [buf] }); // detach: the caller's copy is gone
      }
      gc();
      delete merged.externalData;
      merged.extra['session.model_external_initializers_file_folder_path'] = dir;
      return await create(model, merged);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** A text-to-image run with progress marks: wall time, CPU, per-phase times and RSS, per-step times. */
async function timedTextToImage(label: string, opts: Options, open: () => Checkpoint) {
  const px = opts.size * 8, steps = opts.steps;
  const marks: { e: ProgressEvent; t: number; rss: number; peak: number }[] = [];
  const onProgress = (e: ProgressEvent): void => {
    marks.push({ e, t: now(), rss: rssMib(), peak: peakRssMib() });
    if (e.step === e.total || e.stage === 'denoise') log(`${label}: ${e.stage} ${e.step}/${e.total} (RSS ${rssMib().toFixed(0)} MiB, peak ${peakRssMib().toFixed(0)} MiB)`);
  };
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const r = await textToImage(open(), {
    prompt: 'a photograph of an astronaut riding a horse on the moon, highly detailed, 8k',
    negativePrompt: 'blurry, low quality',
    steps, guidance: 7.5, width: px, height: px, noise: createNoise('native', 1), onProgress,
  });
  const total = now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const at = (stage: string, step: 'first' | 'last'): (typeof marks)[number] => {
    const ms = marks.filter((m) => m.e.stage === stage);
    return step === 'first' ? ms[0]! : ms[ms.length - 1]!;
  };
  const phases: Record<string, number> = { open_to_encode: round(at('encode', 'first').t - t0) };
  const phaseRss: Record<string, { rss: number; peak: number }> = {};
  for (const stage of ['encode', 'denoise', 'decode']) {
    phases[stage] = round(at(stage, 'last').t - at(stage, 'first').t);
    phaseRss[stage] = { rss: Math.round(at(stage, 'last').rss), peak: Math.round(at(stage, 'last').peak) };
  }
  const denoise = marks.filter((m) => m.e.stage === 'denoise');
  const stepTimes = denoise.slice(1).map((m, i) => round(m.t - denoise[i]!.t));
  const common = {
    median_s: round(total), min_s: round(total), gflops: null, first_call_s: round(total), runs: 1, times_s: [round(total)], flops: null,
    cpu_util: round((cpu.user + cpu.system) / 1e6 / total, 2),
    cpu_sys_fraction: round(cpu.system / (cpu.user + cpu.system), 2),
    loadavg_1m: round(LOAD_AT_START, 2),
    steps, phases_s: phases, step_times_s: stepTimes, phase_rss_mib: phaseRss,
    finite: !hasNonFinite(r.latents) && r.images.length === 1,
    size: opts.size, threads: opts.threads ?? ('default' as const),
  };
  return { px, steps, denoiseStart: denoise[0]!.t, common };
}

async function pipelineBench(opts: Options): Promise<Result> {
  configureEngine({ lowMemory: true });
  const component = (name: string, raw: Record<string, Json>, rw: RandomWeights): ComponentSource => ({
    config: () => new Config(`SD 1.5 ${name}/config.json (bench)`, raw),
    weights: () => rw,
  });
  const unetRw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(sd15UnetConfig()));
  const vaeRw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(autoencoderConfig(new Config('SD 1.5 vae/config.json (bench)', SD15_VAE))));
  const textRw = new RandomWeights('random CLIP ViT-L/14 text encoder', clipTextWeightTable(clipTextConfig(new Config('SD 1.5 text_encoder/config.json (bench)', SD15_TEXT))));
  const sources = [unetRw, vaeRw, textRw];
  const ck = Checkpoint.fromSources('bench-sd15-random', {
    unet: component('unet', SD15_UNET, unetRw),
    vae: component('vae', SD15_VAE, vaeRw),
    text_encoder: component('text_encoder', SD15_TEXT, textRw),
  }, SD15_SCHEDULER, () => CLIPTokenizer.bundled());
  log(`pipeline_t2i: text-to-image ${opts.size * 8}x${opts.size * 8}, ${opts.steps} DDIM steps, CFG 7.5, low-memory mode (random weights made on read)`);
  const { px, steps, common } = await timedTextToImage('pipeline_t2i', opts, () => ck);
  const weightsMib = mib(sources.reduce((s, rw) => s + rw.parameterCount * 4, 0));
  const peak = peakRssMib();
  const weightsS = sources.reduce((s, rw) => s + rw.generateSeconds, 0);
  return {
    measure: 'pipeline_t2i',
    ...common,
    peak_rss_mib: Math.round(peak), build_s: null,
    weights_s: round(weightsS),
    weights_mib: Math.round(weightsMib),
    weights_read_mib: Math.round(mib(sources.reduce((s, rw) => s + rw.readBytes, 0))),
    ratio: round(peak / weightsMib),
    ...(opts.size === 64 ? { target_ratio: RATIO_TARGET.pipeline_t2i } : {}),
    ...ortOptionsField(opts),
    note: `textToImage ${px}x${px}, ${steps} DDIM steps, CFG 7.5, configureEngine({ lowMemory: true }); wall time includes session builds and ${weightsS.toFixed(1)} s of random-weight generation (weights_s, standing in for reading the checkpoint); step_times_s[0] includes the UNet build; ratio = peak_rss_mib / weights_mib`,
  };
}

/** Times every ORT session creation in this process (wraps InferenceSession.create, after patchSessionCreate). */
function timeSessionCreates(): { inputs: string[]; start: number; end: number }[] {
  type Create = (model: string | Uint8Array, so?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  const factory = ort.InferenceSession as unknown as { create: Create };
  const create = factory.create.bind(factory);
  const log: { inputs: string[]; start: number; end: number }[] = [];
  factory.create = async (model, so) => {
    const start = now();
    const s = await create(model, so);
    log.push({ inputs: [...s.inputNames], start, end: now() });
    return s;
  };
  return log;
}

const sessionsField = (creates: readonly { inputs: string[]; start: number; end: number }[]): { inputs: string; create_s: number }[] =>
  creates.map((c) => ({ inputs: c.inputs.slice(0, 3).join(',') + (c.inputs.length > 3 ? `,+${c.inputs.length - 3}` : ''), create_s: round(c.end - c.start) }));

/** Environment variables by which the parent hands a child its model folder / PNO mode. */
const ENV_MODEL_DIR = 'VISPROMPT_BENCH_MODEL_DIR';
const ENV_PNO = 'VISPROMPT_BENCH_PNO';

/**
 * The SD 1.5 random weights as a diffusers folder of F32 .safetensors files, streamed tensor by tensor
 * (row blocks of 4 MiB): the writer never holds the model.
 */
function writeRandomCheckpoint(dir: string): { bytes: number; parameters: number } {
  const unetT = unetWeightTable(sd15UnetConfig());
  const vaeT = vaeWeightTable(autoencoderConfig(new Config('SD 1.5 vae/config.json (bench)', SD15_VAE)));
  const textT = clipTextWeightTable(clipTextConfig(new Config('SD 1.5 text_encoder/config.json (bench)', SD15_TEXT)));
  const json = (file: string, obj: unknown): void => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(obj, null, 2));
  };
  json(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline', _diffusers_version: '0.6.0',
    scheduler: ['diffusers', 'DDIMScheduler'], text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], safety_checker: [null, null], feature_extractor: [null, null],
  });
  json(path.join(dir, 'scheduler/scheduler_config.json'), SD15_SCHEDULER);
  json(path.join(dir, 'unet/config.json'), SD15_UNET);
  json(path.join(dir, 'vae/config.json'), SD15_VAE);
  json(path.join(dir, 'text_encoder/config.json'), SD15_TEXT);
  json(path.join(dir, 'tokenizer/tokenizer_config.json'), { model_max_length: 77, pad_token: '<|endoftext|>' });
  json(path.join(dir, 'tokenizer/special_tokens_map.json'), { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
  for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(ROOT, 'assets/clip', f), path.join(dir, 'tokenizer', f));
  let bytes = 0, parameters = 0;
  for (const [file, table] of [['unet/diffusion_pytorch_model.safetensors', unetT], ['vae/diffusion_pytorch_model.safetensors', vaeT], ['text_encoder/model.safetensors', textT]] as const) {
    bytes += writeRandomSafetensors(path.join(dir, file), table);
    for (const s of table.values()) parameters += numel(s.shape);
  }
  return { bytes, parameters };
}

/** pipeline_t2i_disk, the child: openCheckpoint(folder) + textToImage in low-memory mode, weights read by ORT from the files. */
async function pipelineDiskBench(opts: Options): Promise<Result> {
  const dir = process.env[ENV_MODEL_DIR];
  if (!dir) throw new Error(`pipeline_t2i_disk: the parent passes the model folder in ${ENV_MODEL_DIR}`);
  const creates = timeSessionCreates();
  configureEngine({ lowMemory: true });
  log(`pipeline_t2i_disk: openCheckpoint(${dir}) + text-to-image ${opts.size * 8}x${opts.size * 8}, ${opts.steps} DDIM steps, CFG 7.5, low-memory mode`);
  const { px, steps, denoiseStart, common } = await timedTextToImage('pipeline_t2i_disk', opts, () => openCheckpoint(dir));
  // The UNet's session: the one fed `sample`, created after the denoise loop started.
  const unetCreate = creates.find((c) => c.inputs.includes('sample') && c.start >= denoiseStart);
  const unetBuild = unetCreate ? unetCreate.end - denoiseStart : null;
  const parameters = Number(process.env[`${ENV_MODEL_DIR}_PARAMS`] ?? '0');
  const weightsMib = mib(parameters * 4);
  const peak = peakRssMib();
  return {
    measure: 'pipeline_t2i_disk',
    ...common,
    peak_rss_mib: Math.round(peak), build_s: unetBuild === null ? null : round(unetBuild),
    weights_mib: Math.round(weightsMib),
    ratio: round(peak / weightsMib),
    ...(opts.size === 64 ? { target_ratio: RATIO_TARGET.pipeline_t2i_disk } : {}),
    ...(unetCreate ? { unet_create_s: round(unetCreate.end - unetCreate.start) } : {}),
    sessions: sessionsField(creates),
    ...ortOptionsField(opts),
    note: `openCheckpoint(diffusers folder of F32 .safetensors, random SD 1.5 weights) + textToImage ${px}x${px}, ${steps} DDIM steps, CFG 7.5, configureEngine({ lowMemory: true }); F32 weights reach ORT by (file, offset), not through JS; wall time from openCheckpoint to the image (cold, page cache warm from the write); build_s = UNet build (denoise start -> UNet session created: graph + ORT create); write_s = writing the folder (not in the measure); ratio = peak_rss_mib / weights_mib`,
  };
}

/** pno_iteration, the child: one PNO loss + gradient on SD 1.5 UNet + VAE (random weights) with the tiny CLIP tower. */
async function pnoBench(opts: Options): Promise<Result> {
  const spec = JSON.parse(process.env[ENV_PNO] ?? '{}') as { mode?: 'checkpointed' | 'whole_graph'; size?: number };
  const mode = spec.mode ?? 'checkpointed', s = spec.size ?? Math.min(opts.size, 32);
  const creates = timeSessionCreates();
  const unetRw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(sd15UnetConfig()));
  const vaeRw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(autoencoderConfig(new Config('SD 1.5 vae/config.json (bench)', SD15_VAE))));
  const component = (name: string, raw: Record<string, Json>, rw: RandomWeights): ComponentSource => ({
    config: () => new Config(`SD 1.5 ${name}/config.json (bench)`, raw),
    weights: () => rw,
  });
  const ck = Checkpoint.fromSources('bench-sd15-random-pno', { unet: component('unet', SD15_UNET, unetRw), vae: component('vae', SD15_VAE, vaeRw) }, SD15_SCHEDULER, () => CLIPTokenizer.bundled());
  const tower = towerOfCLIPModel(CLIPModel.open(path.join(TINY_MODELS, 'tiny-clip')));
  const problem = {
    zT: randomTensor([1, 4, s, s], 1), c: randomTensor([1, 77, 768], 2), u: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
    steps: 2, guidance: 5, reference: randomTensor([1, 32], 3),
  };
  log(`pno_iteration: ${mode}, latents ${s}x${s} (${s * 8}x${s * 8} px), 2 DDIM steps, guidance 5`);
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  let r: Awaited<ReturnType<typeof pnoLossAndGrads>> | undefined;
  let firstCreate = 0;
  const runs = 1 + (opts.runs ?? 0);
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    r = await pnoLossAndGrads(ck, tower, problem, { checkpointing: mode === 'checkpointed' });
    times.push(now() - t0);
    if (i === 0) firstCreate = creates.reduce((a, c) => a + (c.end - c.start), 0);
    log(`pno_iteration: call ${i + 1}/${runs} ${times[i]!.toFixed(1)} s, loss ${r.loss.toFixed(5)} (RSS ${rssMib().toFixed(0)} MiB, peak ${peakRssMib().toFixed(0)} MiB)`);
  }
  const wall = times.reduce((a, b) => a + b, 0);
  const cpu = process.cpuUsage(cpu0);
  const warm = times.slice(1);
  const norm = (t: Tensor): number => Math.sqrt(t.data.reduce((a, x) => a + x * x, 0));
  const weightsS = unetRw.generateSeconds + vaeRw.generateSeconds;
  return {
    measure: 'pno_iteration', mode,
    median_s: round(warm.length ? median(warm) : times[0]!), min_s: round(Math.min(...(warm.length ? warm : times))), gflops: null,
    peak_rss_mib: Math.round(peakRssMib()), build_s: round(firstCreate),
    first_call_s: round(times[0]!), runs: times.length, times_s: times.map((t) => round(t)), flops: null,
    wall_minus_create_s: round(times[0]! - firstCreate),
    cpu_util: round((cpu.user + cpu.system) / 1e6 / wall, 2),
    loadavg_1m: round(LOAD_AT_START, 2),
    weights_s: round(weightsS),
    weights_mib: Math.round(mib((unetRw.parameterCount + vaeRw.parameterCount) * 4)),
    weights_read_mib: Math.round(mib(unetRw.readBytes + vaeRw.readBytes)),
    sessions: sessionsField(creates),
    loss: round(r!.loss, 5), grad_z_norm: round(norm(r!.gradZT)), grad_c_norm: round(norm(r!.gradC)),
    finite: Number.isFinite(r!.loss) && !hasNonFinite(r!.gradZT) && !hasNonFinite(r!.gradC),
    size: s, steps: 2,
    threads: opts.threads ?? 'default',
    ...ortOptionsField(opts),
    note: `pnoLossAndGrads, checkpointing: ${mode === 'checkpointed'}, SD 1.5 UNet + VAE (random weights, in memory), latents ${s}x${s}, 2 DDIM steps, guidance 5, c random [1, 77, 768], u zeros, reference random [1, 32]; the CLIP tower is test/fixtures/models/tiny-clip on purpose (the cost is in the UNet and VAE); first call is cold: build_s = ORT InferenceSession.create seconds in it (excludes JS graph build / autodiff), weights_s = random-weight generation in it${warm.length ? '; median_s/min_s over the warm calls' : '; median_s = min_s = the cold call (--runs N adds warm calls)'}`,
  };
}

async function runChild(measure: string, opts: Options): Promise<void> {
  patchSessionCreate(opts);
  if (opts.threads) configureEngine({ threads: opts.threads });
  let r: Result;
  switch (measure) {
    case 'unet_step': r = await benchGraph(unetBench(opts), opts); break;
    case 'unet_step_sdxl': { const x = unetSdxlBench(opts); try { r = await benchGraph(x.bench, opts); } finally { x.cleanup(); } break; }
    case 'vae_decode': r = await benchGraph(vaeBench(opts), opts); break;
    case 'text_encode': r = await benchGraph(textBench(opts), opts); break;
    case 'matmul_ceiling': r = await benchGraph(matmulBench(opts), opts); break;
    case 'pipeline_t2i': r = await pipelineBench(opts); break;
    case 'vary_step_ratio': r = await varyStepRatio(opts); break;
    case 'controlnet_step_ratio': r = await controlNetStepRatio(opts); break;
    case 'taesd_decode_ratio': r = await taesdDecodeRatio(opts); break;
    case 'pipeline_t2i_disk': r = await pipelineDiskBench(opts); break;
    case 'pno_iteration': r = await pnoBench(opts); break;
    default: r = await tinyBench(measure, opts);
  }
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per measure, then the report.

/** The child's resident set (MiB) from /proc, or 0 where it cannot be read. */
function childRssMib(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function spawnMeasure(measure: string, argv: readonly string[], o: { env?: Record<string, string>; rssLimitMib?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...argv, '--child', measure], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...o.env } });
    let stdout = '';
    let overLimit = 0;
    const watch = o.rssLimitMib === undefined ? undefined : setInterval(() => {
      const rss = childRssMib(child.pid!);
      if (rss > o.rssLimitMib!) { overLimit = rss; child.kill('SIGKILL'); }
    }, 250);
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (watch) clearInterval(watch);
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('{'));
      if (overLimit) {
        reject(new Error(`${measure}: killed by the bench: RSS ${overLimit.toFixed(0)} MiB passed the limit of ${o.rssLimitMib} MiB`));
        return;
      }
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
const verdict = (ratio: number, target: number | undefined): string => (target === undefined ? '' : ratio <= target ? `, target <= ${target}x met` : `, target <= ${target}x MISSED`);

function describe(r: Result): string {
  if (r.measure === 'pipeline_t2i_disk') {
    const ph = r.phases_s ?? {};
    return `${r.measure} ${fmtS(r.median_s)} cold (open ${fmtS(ph.open_to_encode ?? 0)}, encode ${fmtS(ph.encode ?? 0)}, denoise ${fmtS(ph.denoise ?? 0)} [steps ${(r.step_times_s ?? []).map(fmtS).join(', ')}], decode ${fmtS(ph.decode ?? 0)}); ` +
      `UNet build ${r.build_s === null ? '-' : fmtS(r.build_s)} (ORT create ${fmtS(r.unet_create_s ?? 0)}); peak RSS ${fmtGiB(r.peak_rss_mib)} = ${r.ratio!.toFixed(2)}x the fp32 weights (${fmtGiB(r.weights_mib!)})${verdict(r.ratio!, r.target_ratio)}; folder written in ${fmtS(r.write_s ?? 0)} (not measured)${r.finite === false ? ' [output not finite!]' : ''}`;
  }
  if (r.measure === 'pno_iteration') {
    return `${r.measure} ${r.mode} ${r.size}x${r.size}: ${fmtS(r.first_call_s)} cold (ORT session creation ${fmtS(r.build_s ?? 0)}, random weights ${fmtS(r.weights_s ?? 0)})${r.runs > 1 ? `, warm ${fmtS(r.median_s)}` : ''}; peak RSS ${fmtGiB(r.peak_rss_mib)}; loss ${r.loss}${r.finite === false ? ' [not finite!]' : ''}`;
  }
  if (r.measure === 'pipeline_t2i') {
    const ph = r.phases_s ?? {};
    return `${r.measure.padEnd(15)} ${fmtS(r.median_s)} cold (${r.steps} steps: encode ${fmtS(ph.encode ?? 0)}, denoise ${fmtS(ph.denoise ?? 0)} [steps ${(r.step_times_s ?? []).map(fmtS).join(', ')}], decode ${fmtS(ph.decode ?? 0)}; ` +
      `${fmtS(r.weights_s ?? 0)} of it random weights); peak RSS ${fmtGiB(r.peak_rss_mib)} = ${r.ratio!.toFixed(2)}x the fp32 weights of UNet + VAE + text encoder (${fmtGiB(r.weights_mib!)})${verdict(r.ratio!, r.target_ratio)}` +
      `; peak after encode / denoise / decode ${['encode', 'denoise', 'decode'].map((p) => fmtGiB(r.phase_rss_mib?.[p]?.peak ?? 0)).join(' / ')}${r.finite === false ? ' [output not finite!]' : ''}`;
  }
  if (r.baseline_median_s !== undefined) {
    const parts = [`${r.measure.padEnd(15)} ${fmtS(r.median_s)} (${r.rows} rows) vs plain step ${fmtS(r.baseline_median_s)} (${r.baseline_rows} rows) = ${r.ratio!.toFixed(2)}x${verdict(r.ratio!, r.target_ratio)}`];
    if (r.concat_median_s !== undefined) parts.push(`; concatenation weights ${fmtS(r.concat_median_s)} = ${r.concat_ratio!.toFixed(2)}x (${r.variant_graphs_built === 1 ? 'same graph' : `${r.variant_graphs_built} graphs built!`})`);
    parts.push(`; ${r.gflops!.toFixed(0)} vs ${r.baseline_gflops!.toFixed(0)} GFLOP/s; build ${fmtS(r.build_s!)} + first call ${fmtS(r.first_call_s)}; peak RSS ${fmtGiB(r.peak_rss_mib)} (both sessions)`);
    if (r.finite === false) parts.push(' [output not finite!]');
    return parts.join('');
  }
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
  const head = ['measure', 'median', 'min', 'GFLOP/s', 'of ceiling', 'peak RSS', 'build', 'first call', 'ratio'];
  const rows = results.map((r) => [
    r.measure, fmtS(r.median_s), fmtS(r.min_s), r.gflops === null ? '-' : r.gflops.toFixed(0),
    r.ceiling_fraction === undefined ? '-' : r.ceiling_fraction.toFixed(2), fmtGiB(r.peak_rss_mib),
    r.build_s === null ? '-' : fmtS(r.build_s), fmtS(r.first_call_s), r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** RSS at which the bench kills a PNO child (the machine has 24 GiB, shared). */
const PNO_RSS_LIMIT_MIB = 20 * 1024;

interface Job {
  measure: string;
  label: Record<string, string | number>;
  /** A failure here is a result (the 64x64 PNO that may not fit), not an error of the bench. */
  expectFailure?: boolean;
  run(argv: readonly string[]): Promise<Result>;
}

/** The child processes of a measure: one for most; pipeline_t2i_disk writes its folder first; pno_iteration one per mode and size. */
function jobsOf(m: string, opts: Options): Job[] {
  if (m === 'pipeline_t2i_disk') {
    return [{
      measure: m, label: {},
      async run(argv) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-bench-sd15-'));
        try {
          log(`pipeline_t2i_disk: writing the random SD 1.5 checkpoint to ${dir} (streamed, not measured)`);
          const t0 = now();
          const { bytes, parameters } = writeRandomCheckpoint(dir);
          const writeS = now() - t0;
          log(`pipeline_t2i_disk: wrote ${fmtGiB(mib(bytes))} in ${fmtS(writeS)}`);
          const r = await spawnMeasure(m, argv, { env: { [ENV_MODEL_DIR]: dir, [`${ENV_MODEL_DIR}_PARAMS`]: String(parameters) } });
          return { ...r, write_s: round(writeS), write_mib: Math.round(mib(bytes)) };
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    }];
  }
  if (m === 'pno_iteration') {
    const small = Math.min(opts.size, 32);
    const specs: { mode: 'checkpointed' | 'whole_graph'; size: number; expectFailure?: boolean }[] = [
      { mode: 'checkpointed', size: small }, { mode: 'whole_graph', size: small },
    ];
    if (opts.size >= 64) specs.push({ mode: 'checkpointed', size: 64, expectFailure: true });
    return specs.map((spec) => ({
      measure: m, label: { mode: spec.mode, size: spec.size }, expectFailure: spec.expectFailure,
      run: (argv) => spawnMeasure(m, argv, { env: { [ENV_PNO]: JSON.stringify(spec) }, rssLimitMib: PNO_RSS_LIMIT_MIB }),
    }));
  }
  return [{ measure: m, label: {}, run: (argv) => spawnMeasure(m, argv) }];
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
    console.log(`visprompt bench: SD 1.5 fp32, random weights, onnxruntime-node ${ort.env.versions.common} cpu, intra-op threads ${threads}, latents ${opts.size}x${opts.size} (${opts.size * 8}x${opts.size * 8} px)${opts.ort.length ? `, ORT options ${opts.ort.join(' ')}` : ''}${opts.ortFromFiles ? ', weights handed to ORT as files' : ''}`);
  }
  for (const job of order.flatMap((m) => jobsOf(m, opts))) {
    const m = job.measure;
    let r: Result;
    try {
      r = await job.run(forwarded);
    } catch (e) {
      if (job.expectFailure) {
        console.error(`bench: ${(e as Error).message} (expected possible outcome, reported)`);
        const line = { measure: m, ...job.label, error: (e as Error).message };
        console.log(opts.json ? JSON.stringify(line) : `${m.padEnd(15)} ${JSON.stringify(job.label)}: ${line.error}`);
        continue;
      }
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
    console.log('GFLOP/s = 2*MACs of Conv/Gemm/MatMul/fused attention per median call; "of ceiling" = that over the matmul\'s best call.');
    console.log('ratio: unet_step, vae_decode = median / PyTorch; *_step_ratio = median / plain CFG step; pipeline_t2i = peak RSS / fp32 weights.');
    console.log('Targets: UNet step <= 0.6x (about 11 s, >= 0.7 of the matmul ceiling), VAE decode <= 1.0x, whole-pipeline peak RSS <= 1.3x the fp32 weights of UNet+VAE+text encoder, build + first call < 60 s, vary step <= 1.5x the generate step.');
  }
  if (failed) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(1);
});
