/**
 * Running graphs on ONNX Runtime: compile once per graph structure, then feed tensors.
 * Sessions are cached per process by a structural key chosen by the caller (model + shapes + method),
 * and weights stay in the caller's Float32Arrays (in-memory external data).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { setWeightMirrorFolder } from '../io/f32-mirror.js';
import { InputError, VispromptError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Graph } from './ir.js';
import { toOnnx } from './onnx.js';
import { ensureVulkanLoader } from './vulkan-loader.js';
import { softwareAdapter } from './software-adapter.js';

export type Device = 'cpu' | 'webgpu' | 'cuda';

export interface EngineOptions {
  device?: Device;
  /** Threads for one operator (ORT intra-op); default: ORT's choice (all cores). */
  threads?: number;
  /** Release each model's sessions when a pipeline phase no longer needs them (the CLI's default). */
  lowMemory?: boolean;
  /**
   * Folder for ONNX Runtime's optimized graphs, reused by later processes, and for float32 mirrors of
   * half-precision checkpoints (read by ONNX Runtime from disk) — off when unset.
   */
  graphCache?: string;
  /**
   * Without graphCache, where the float32 copies of F16/BF16 weights live: 'temp' (default) a folder of this
   * process under the OS temp folder, read by ONNX Runtime from disk and removed at exit (peak memory as
   * from an F32 checkpoint); 'memory' converted in memory (no disk use, about twice the peak memory).
   */
  halfPrecisionMirror?: 'temp' | 'memory';
}

let engineOptions: EngineOptions = { device: 'cpu' };

export function configureEngine(opts: EngineOptions): void {
  if (opts.device && !['cpu', 'webgpu', 'cuda'].includes(opts.device)) throw new InputError(`unknown device ${JSON.stringify(opts.device)} (expected cpu, webgpu or cuda)`);
  const structural = opts.device !== engineOptions.device || opts.threads !== engineOptions.threads;
  engineOptions = { ...engineOptions, ...opts };
  setWeightMirrorFolder(engineOptions.graphCache ? path.join(engineOptions.graphCache, 'f32-weights') : undefined, engineOptions.halfPrecisionMirror);
  if (structural) cache.clear();
}

/** A graph input's value: float32 data, or int64 given as plain numbers. */
export type Feed = Tensor | { readonly int64: readonly number[]; readonly shape: readonly number[] };

export class CompiledGraph {
  /** Free the session (its copy of the weights); later calls to `run` fail. */
  async release(): Promise<void> { await this.session.release(); }

  constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly inputShapes: ReadonlyMap<string, readonly number[]>,
  ) {}

  /** Run with float32 (or int64) feeds; returns every graph output. */
  async run(feeds: Record<string, Feed>): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const f = feeds[name];
      if (!f) throw new Error(`graph input ${name} not fed`);
      const want = this.inputShapes.get(name)!;
      if (want.join(',') !== f.shape.join(',')) throw new Error(`graph input ${name}: expected shape [${want}], got [${f.shape}]`);
      ortFeeds[name] = 'int64' in f
        ? new ort.Tensor('int64', BigInt64Array.from(f.int64.map((v) => BigInt(v))), [...f.shape])
        : new ort.Tensor('float32', f.data, [...f.shape]);
    }
    const out = await this.session.run(ortFeeds);
    const result: Record<string, Tensor> = {};
    for (const name of this.outputNames) {
      const t = out[name]!;
      result[name] = { shape: [...t.dims], data: t.data as Float32Array };
    }
    return result;
  }
}

const cache = new Map<string, Promise<CompiledGraph>>();

/**
 * Compile `build()`'s graph, or return the cached session for `key`. `build` only runs on a miss,
 * so callers can key on everything that decides the graph's structure and skip building it again.
 */
export function compile(key: string, build: () => Graph): Promise<CompiledGraph> {
  let p = cache.get(key);
  if (!p) {
    p = createSession(build());
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/**
 * The graph's identity for the on-disk cache: its structure and small constants (the proto) and, for
 * each external weight, its size and a fingerprint of its bytes (sampled, so hashing stays cheap).
 */
function graphDigest(proto: Uint8Array, externalData: readonly { path: string; data: Uint8Array }[], files: readonly string[]): string {
  const h = crypto.createHash('sha256');
  h.update(proto);
  for (const f of files) { const st = fs.statSync(f); h.update(`${f}:${st.size}:${st.mtimeMs}`); }
  for (const e of externalData) {
    h.update(`${e.path}:${e.data.byteLength}`);
    const step = Math.max(1, Math.floor(e.data.byteLength / 64));
    for (let i = 0; i < e.data.byteLength; i += step) h.update(e.data.subarray(i, Math.min(i + 16, e.data.byteLength)));
  }
  // Optimized graphs are specific to the runtime version and the processor (NCHWc layouts, kernels).
  h.update(`${ort.env.versions.node}:${engineOptions.device ?? 'cpu'}:${os.cpus()[0]?.model ?? ''}`);
  return h.digest('hex').slice(0, 32);
}

async function createSession(g: Graph): Promise<CompiledGraph> {
  if (engineOptions.device === 'webgpu') ensureVulkanLoader(); // without LD_LIBRARY_PATH where only chromium's loader exists
  try {
    return await createSessionOn(g);
  } catch (e) {
    // ONNX Runtime's WebGPU provider finds no adapter when no Vulkan driver is installed (a GPU's, or a software one).
    if (engineOptions.device === 'webgpu' && e instanceof Error && /WebGPU adapter|No supported adapters/i.test(e.message)) {
      throw new VispromptError('--device webgpu: no WebGPU adapter found (install a Vulkan driver; for the software GPU: apt install chromium, then VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json XDG_RUNTIME_DIR=/tmp)');
    }
    throw e;
  }
}

async function createSessionOn(g: Graph): Promise<CompiledGraph> {
  const { proto, externalData, fileFolder, files } = toOnnx(g);
  const opts: ort.InferenceSession.SessionOptions = {
    // A software adapter runs ONNX Runtime's NHWC layout transposes as tiled (workgroup-synchronised) kernels: NCHW there.
    executionProviders: [engineOptions.device === 'webgpu' && softwareAdapter() ? { name: 'webgpu', preferredLayout: 'NCHW' } : engineOptions.device ?? 'cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only: shape-merge and serialization notices are not the user's business
  };
  // Weights stored as F32 in the checkpoint are read by ONNX Runtime from the checkpoint's folder itself.
  const folder = fileFolder ? { model_external_initializers_file_folder_path: fileFolder } : {};
  if (engineOptions.threads) opts.intraOpNumThreads = engineOptions.threads;
  const io = { inputs: g.inputs.map((v) => v.name), outputs: g.outputs.map((o) => o.name), shapes: new Map(g.inputs.map((v) => [v.name, v.shape] as const)) };
  let session: ort.InferenceSession;
  const dir = engineOptions.graphCache;
  if (dir) {
    // ONNX Runtime's optimized graph (layout transforms, fusions) saved once with its weights beside it;
    // a later process loads it from disk and skips the optimizer (most of a large model's build time).
    const digest = graphDigest(proto, externalData, files);
    const model = path.join(dir, `${digest}.onnx`);
    if (fs.existsSync(model) && fs.existsSync(`${model}.ready`)) {
      session = await ort.InferenceSession.create(model, { ...opts, graphOptimizationLevel: 'disabled' });
    } else {
      // Written into a private folder, then renamed into place (weights first): a process building the same
      // graph at the same time never leaves a half-written file where a third one would load it.
      fs.mkdirSync(dir, { recursive: true });
      const tmp = fs.mkdtempSync(path.join(dir, `.building-${digest}-`));
      try {
        session = await ort.InferenceSession.create(proto, {
          ...opts, externalData, optimizedModelFilePath: path.join(tmp, `${digest}.onnx`),
          extra: { session: { ...folder, optimized_model_external_initializers_file_name: `${digest}.weights`, optimized_model_external_initializers_min_size_in_bytes: '1024' } },
        });
        const weights = path.join(tmp, `${digest}.weights`);
        if (fs.existsSync(weights)) fs.renameSync(weights, path.join(dir, `${digest}.weights`));
        fs.renameSync(path.join(tmp, `${digest}.onnx`), model);
        fs.writeFileSync(`${model}.ready`, '');
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  } else {
    session = await ort.InferenceSession.create(proto, { ...opts, externalData, extra: { session: folder } });
  }
  return new CompiledGraph(session, io.inputs, io.outputs, io.shapes);
}

/**
 * Release cached sessions whose key starts with `prefix` (all with ''). Each session holds its own copy
 * of its weights, so pipelines release what they no longer need when memory matters.
 */
export async function releaseSessions(match: string | ((key: string) => boolean) = ''): Promise<number> {
  const keys = [...cache.keys()].filter((k) => (typeof match === 'string' ? k.startsWith(match) : match(k)));
  for (const k of keys) {
    const p = cache.get(k)!;
    cache.delete(k);
    try { await (await p).release(); } catch { /* a failed build holds nothing */ }
  }
  return keys.length;
}

/** The device graphs are built for: graph code emits exact primitives where a device's fused kernel is not float32-faithful. */
export function engineDevice(): Device { return engineOptions.device ?? 'cpu'; }

/** Whether pipelines should release sessions as soon as a phase is done (peak memory over reuse). */
export function lowMemory(): boolean { return engineOptions.lowMemory === true; }

/** Build, compile (uncached) and run a graph once: for tests and one-off computations. */
export async function runOnce(g: Graph, feeds: Parameters<CompiledGraph['run']>[0]): Promise<Record<string, Tensor>> {
  const s = await createSession(g);
  try { return await s.run(feeds); } finally { await s.release(); }
}
