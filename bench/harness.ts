/**
 * The benchmark's shared harness: options and result types, timing, RSS, the FLOP count of a built graph,
 * session creation (with --ort overrides), one measured graph (`benchGraph`), two graphs timed alternately
 * (`timeArms` + `ratioResult`), a timed text-to-image run, and the child process that runs one measure.
 * A measure is a small file in bench/measures/ (see /work/notes/bench-harness.md); bench/bench.ts is the runner.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import ort from 'onnxruntime-node';
import type { Checkpoint } from '../src/components/checkpoint.js';
import type { AttrValue, DType, Value } from '../src/graph/ir.js';
import { Graph } from '../src/graph/ir.js';
import { CompiledGraph, compile, type Feed } from '../src/graph/session.js';
import { toOnnx } from '../src/graph/onnx.js';
import { createNoise } from '../src/noise/gaussian.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { hasNonFinite, numel, type Tensor } from '../src/tensor.js';
import { fillUniform, type RandomWeights } from './random-weights.js';

/** dist/bench/bench.js: the runner, which the parent starts again as `--child MEASURE`. */
export const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bench.js');
export const ROOT = path.resolve(path.dirname(SCRIPT), '../..');
export const TINY_MODELS = path.join(ROOT, 'test/fixtures/models');

// ---------------------------------------------------------------------------------------------
// Options

export interface Options {
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

// ---------------------------------------------------------------------------------------------
// A measure: one file in bench/measures/, listed in bench/measures/index.ts.

/** A child process of a measure, as the parent starts it (`argv`: the runner's options, without --json). */
export interface Job {
  measure: string;
  label: Record<string, string | number>;
  /** A failure here is a result (e.g. a run that may not fit in memory), not an error of the bench. */
  expectFailure?: boolean;
  run(argv: readonly string[]): Promise<Result>;
}

export interface Measure {
  /** The `measure` field of its result line and the name --only takes. */
  name: string;
  /** Runs in the child process (`--child NAME`) and returns the result line. */
  run(opts: Options): Promise<Result>;
  /** The child processes the parent starts (default: one, `spawnMeasure(name, argv)`). */
  jobs?(opts: Options): Job[];
  /** The human-readable line (default: the runner's generic line). */
  describe?(r: Result): string;
  /** PyTorch CPU yardstick on this machine (../shared/DESIGN.md), seconds, and the issue's target (ratio to it). */
  yardstick?: { seconds: number; target?: number; what: string };
  /** The issue's target of `ratio` for a measure compared with something else than the yardstick (judged at --size 64). */
  ratioTarget?: number;
}

// ---------------------------------------------------------------------------------------------
// Results

export interface Result {
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
  /** A measure's own fields (declare them in its file; the runner prints every field of the line). */
  [extra: string]: unknown;
}

export const LOAD_AT_START = os.loadavg()[0]!;
export const now = (): number => performance.now() / 1000;
export const mib = (bytes: number): number => bytes / 2 ** 20;
export const peakRssMib = (): number => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
export const rssMib = (): number => mib(process.memoryUsage().rss);
export const round = (x: number, digits = 3): number => Number(x.toPrecision(digits + 2));

export const fmtS = (s: number): string => (s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3)) + ' s';
export const fmtGiB = (m: number): string => (m / 1024).toFixed(2) + ' GiB';
export const verdict = (ratio: number, target: number | undefined): string => (target === undefined ? '' : ratio <= target ? `, target <= ${target}x met` : `, target <= ${target}x MISSED`);

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// A Graph that remembers every value's shape, and the FLOP count of its Conv / Gemm / MatMul nodes.

export class ShapeGraph extends Graph {
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
export function countFlops(g: ShapeGraph): { total: number; byOp: Record<string, number> } {
  const byOp: Record<string, number> = {};
  for (const n of g.nodes) {
    let f = 0;
    if (n.op === 'Conv') {
      const w = g.shapeOf(n.inputs[1]!); // [OC, IC/groups, KH, KW]
      f = 2 * numel(g.shapeOf(n.outputs[0]!)) * w[1]! * w[2]! * w[3]!;
    } else if (n.op === 'MatMul' || n.op === 'DynamicQuantizeMatMul' || n.op === 'MatMulIntegerToFloat') { // (int8 products: the same multiply-adds)
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

export function ortOverrides(kvs: readonly string[]): ort.InferenceSession.SessionOptions {
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

export async function compileGraph(key: string, g: Graph, opts: Options): Promise<CompiledGraph> {
  if (!opts.ort.length) return compile(key, () => g);
  // The same options as src/graph/session.ts createSession, plus the overrides.
  const { proto, externalData } = toOnnx(g);
  const so: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', externalData, ...ortOverrides(opts.ort) };
  if (opts.threads) so.intraOpNumThreads = opts.threads;
  const session = await ort.InferenceSession.create(proto, so);
  return new CompiledGraph(session, g.inputs.map((v) => v.name), g.outputs.map((o) => o.name), new Map(g.inputs.map((v) => [v.name, v.shape])));
}

export const ortOptionsField = (opts: Options): { ort_options?: string[] } => (opts.ort.length || opts.ortFromFiles ? { ort_options: [...opts.ort, ...(opts.ortFromFiles ? ['--ort-from-files'] : [])] } : {});

export function randomTensor(shape: readonly number[], seed: number, bound = Math.sqrt(3)): Tensor {
  const data = new Float32Array(numel(shape));
  fillUniform(data, bound, seed);
  return { shape, data };
}

// ---------------------------------------------------------------------------------------------
// One measure of a graph: build, first call, timed calls.

/** Key prefixes every key of which the graph must read (checks the weight tables against the builders). */
export type MustRead = readonly { source: RandomWeights; prefix: string }[];

export interface GraphBench {
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
export interface Prepared {
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
export async function prepare(label: string, key: string, build: () => ShapeGraph, sources: readonly RandomWeights[], opts: Options, mustRead: MustRead = []): Promise<Prepared> {
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

export async function benchGraph(b: GraphBench, opts: Options): Promise<Result> {
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
// Ratio measures: two graphs in one process, their timed calls alternating.

/** One graph of a ratio measure, with one or more feed sets (each timed on its own). */
export interface Arm {
  label: string;
  key: string;
  /** UNet rows (batch) of the graph. */
  rows: number;
  sources: RandomWeights[];
  mustRead?: MustRead;
  build(): ShapeGraph;
  feeds: Record<string, Record<string, Feed>>;
}

export interface TimedArm {
  prepared: Prepared;
  /** First (untimed) call of each feed set, seconds. */
  first: Record<string, number>;
  /** Timed calls of each feed set, seconds. */
  times: Record<string, number[]>;
  /** CPU seconds (user + system, all threads) of each timed call: less skewed than wall time by other work on the machine. */
  cpu: Record<string, number[]>;
  finite: boolean;
}

export interface Timed {
  arms: TimedArm[];
  cpuUtil: number;
  cpuSys: number;
}

/**
 * Build every arm (in order: the bigger graph first, so the second build's transient JS weights sit next to
 * one session rather than two), one untimed first call per feed set, then `runs` rounds of one call per
 * feed set of every arm.
 */
export async function timeArms(measure: string, arms: readonly Arm[], runs: number, opts: Options): Promise<Timed> {
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
    out.push({ prepared, first, times: Object.fromEntries(Object.keys(a.feeds).map((k) => [k, []])), cpu: Object.fromEntries(Object.keys(a.feeds).map((k) => [k, []])), finite });
  }
  const cpu0 = process.cpuUsage(), wall0 = now();
  for (let i = 0; i < runs; i++) {
    for (const [j, a] of arms.entries()) {
      for (const [name, feeds] of Object.entries(a.feeds)) {
        const t = now(), c0 = process.cpuUsage();
        const r = await out[j]!.prepared.compiled.run(feeds);
        const dt = now() - t, c = process.cpuUsage(c0);
        out[j]!.times[name]!.push(dt);
        out[j]!.cpu[name]!.push((c.user + c.system) / 1e6);
        out[j]!.finite &&= !Object.values(r).some(hasNonFinite);
        log(`${measure} ${a.label}/${name}: call ${i + 1}/${runs} ${dt.toFixed(2)} s`);
      }
    }
  }
  const cpu = process.cpuUsage(cpu0), wall = now() - wall0;
  return { arms: out, cpuUtil: (cpu.user + cpu.system) / 1e6 / wall, cpuSys: cpu.system / (cpu.user + cpu.system) };
}

/** The result line of a ratio measure: the measured graph's feed set `main` against the baseline arm's. */
export function ratioResult(measure: string, timed: Timed, arms: readonly Arm[], main: string, runs: number, opts: Options, extra: Partial<Result>, targetRatio?: number): Result {
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
    ...(targetRatio !== undefined && opts.size === 64 ? { target_ratio: targetRatio } : {}),
    rows: arms[0]!.rows,
    baseline_rows: arms[1]!.rows,
    baseline_median_s: round(bmed),
    baseline_min_s: round(Math.min(...bt)),
    baseline_gflops: round(base.prepared.flops / bmed / 1e9),
    baseline_build_s: round(base.prepared.buildS),
    // CPU seconds per call (medians) and their ratio: on a loaded machine wall times swing with other work
    cpu_s: round(median(m.cpu[main]!)),
    baseline_cpu_s: round(median(Object.values(base.cpu)[0]!)),
    cpu_ratio: round(median(m.cpu[main]!) / median(Object.values(base.cpu)[0]!)),
    ...extra,
  };
}
// ---------------------------------------------------------------------------------------------
// The whole pipeline on a Checkpoint of random weights.

/**
 * Investigations (memory): with --ort, every session the engine creates gets the extra options; with
 * --ort-from-files, sessions read their external weights from files written to a temporary folder, and
 * the JS copies are detached (freed) before ORT builds the session: what an engine that handed ORT
 * file-backed weights (an fp32 safetensors file at its offsets) and kept no JS copy would peak at.
 */
export function patchSessionCreate(opts: Options): void {
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
export async function timedTextToImage(label: string, opts: Options, open: () => Checkpoint) {
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

/** Times every ORT session creation in this process (wraps InferenceSession.create, after patchSessionCreate). */
export function timeSessionCreates(): { inputs: string[]; start: number; end: number }[] {
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

export const sessionsField = (creates: readonly { inputs: string[]; start: number; end: number }[]): { inputs: string; create_s: number }[] =>
  creates.map((c) => ({ inputs: c.inputs.slice(0, 3).join(',') + (c.inputs.length > 3 ? `,+${c.inputs.length - 3}` : ''), create_s: round(c.end - c.start) }));

// ---------------------------------------------------------------------------------------------
// The child process of a measure (started by the parent runner).

/** The child's resident set (MiB) from /proc, or 0 where it cannot be read. */
export function childRssMib(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export function spawnMeasure(measure: string, argv: readonly string[], o: { env?: Record<string, string>; rssLimitMib?: number } = {}): Promise<Result> {
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
