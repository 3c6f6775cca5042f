/**
 * An IP-Adapter file in the official h94 layout: `image_proj.*` (the image projection) and
 * `ip_adapter.<n>.to_k_ip.weight` / `to_v_ip.weight` (one pair per cross-attention layer, n = 1, 3, 5, ...:
 * the index of that attn2 processor in diffusers' `unet.attn_processors`). One `.safetensors` file, or the
 * official `.bin` pickle `{'image_proj': {...}, 'ip_adapter': {...}}` (read weights-only).
 *
 * The projection is renamed to diffusers' module names on load, as diffusers'
 * `_convert_ip_adapter_image_proj_to_diffusers` does (to_kv split into to_k / to_v), so the graph code
 * reads like `ImageProjection` / `IPAdapterPlusImageProjection`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../../errors.js';
import type { TensorInfo } from '../../io/safetensors.js';
import { openTensorFile, type TensorFile } from '../../io/tensor-file.js';
import { WeightsView, type TensorSource } from '../../io/weights.js';
import type { Tensor } from '../../tensor.js';

/** diffusers `ImageProjection`: Linear(image_embeds -> tokens x width) + LayerNorm. */
export interface ImageProjectionSpec {
  readonly kind: 'base';
  /** Width of the image encoder's `image_embeds` it reads (projection_dim). */
  readonly imageEmbedDim: number;
  /** Width of each image token (the UNet's cross_attention_dim). */
  readonly crossAttentionDim: number;
  readonly numTokens: number;
}

/** diffusers `IPAdapterPlusImageProjection` (the Resampler) over the penultimate hidden states. */
export interface PlusImageProjectionSpec {
  readonly kind: 'plus';
  /** Width of the image encoder's hidden states it reads (hidden_size). */
  readonly imageEmbedDim: number;
  readonly crossAttentionDim: number;
  /** Learned queries (latents [1, numTokens, hiddenDim]). */
  readonly numTokens: number;
  readonly hiddenDim: number;
  readonly heads: number;
  readonly dimHead: number;
  readonly depth: number;
  /** FeedForward inner width (hiddenDim x ffn_ratio). */
  readonly ffInner: number;
}

export type IPAdapterProjectionSpec = ImageProjectionSpec | PlusImageProjectionSpec;

/** Where a diffusers-named tensor lies in the file: a stored tensor, or a block of its rows (to_kv's halves). */
interface Entry {
  readonly stored: string;
  readonly shape: readonly number[];
  readonly rows?: readonly [number, number];
}

/**
 * The adapter file under diffusers' names. Reads are lazy and not kept (a large SDXL adapter is not held
 * twice: ONNX Runtime keeps its own copy in the UNet session), F32 tensors are offered by location.
 */
class AdapterSource implements TensorSource {
  constructor(readonly origin: string, private readonly file: TensorFile, private readonly entries: ReadonlyMap<string, Entry>) {}
  keys(): Iterable<string> { return this.entries.keys(); }
  has(key: string): boolean { return this.entries.has(key); }
  shape(key: string): readonly number[] { return this.entry(key).shape; }
  read(key: string): Tensor {
    const e = this.entry(key);
    const t = e.rows ? this.file.readRows(e.stored, e.rows[0], e.rows[1]) : this.file.readFloat32(e.stored);
    return { shape: [...e.shape], data: t.data };
  }
  location(key: string): { path: string; offset: number } | undefined {
    const e = this.entry(key);
    const info = this.file.info(e.stored) as TensorInfo & { contiguous?: boolean };
    return !e.rows && info.dtype === 'F32' && info.contiguous !== false && info.offset % 4 === 0 ? { path: this.file.path, offset: info.offset } : undefined;
  }
  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) throw new FileFormatError(this.origin, 'missing weight', key);
    return e;
  }
}

const opened = new Map<string, IPAdapter>();

/** The Resampler's attention head width: diffusers fixes dim_head at 64 and infers heads from to_q. */
const RESAMPLER_DIM_HEAD = 64;

export class IPAdapter {
  private constructor(
    /** The file it was read from (messages, session keys). */
    readonly file: string,
    readonly projection: IPAdapterProjectionSpec,
    /** The projection's weights under diffusers' names (`image_embeds`, `norm` / `latents`, `proj_in`, `layers.i.attn.to_q`, ...). */
    readonly imageProj: WeightsView,
    /** `ip_adapter.<n>` for each cross-attention layer, n = 1, 3, 5, ... */
    private readonly layerViews: ReadonlyMap<number, WeightsView>,
    readonly id: string,
  ) {}

  /** Number of cross-attention layers the adapter has weights for. */
  get layers(): number { return this.layerViews.size; }

  /** `ip_adapter.<n>` (to_k_ip / to_v_ip) of the attn2 layer at processor index n. */
  layer(n: number): WeightsView {
    const v = this.layerViews.get(n);
    if (!v) throw new FileFormatError(this.file, `no weights for cross-attention layer ${n}`, `ip_adapter.${n}.to_k_ip.weight`);
    return v;
  }

  /** Does the projection read the image encoder's penultimate hidden states (plus) or its image_embeds (base)? */
  get readsHiddenStates(): boolean { return this.projection.kind === 'plus'; }

  static open(file: string): IPAdapter {
    if (!fs.existsSync(file)) throw new InputError(`--ip-adapter file not found: ${file}`);
    if (fs.statSync(file).isDirectory()) throw new InputError(`--ip-adapter must be a file (ip-adapter_*.safetensors or .bin), got the folder ${file}`);
    // One open file per adapter file and process: repeated runs (a server) reuse it instead of opening more.
    const st = fs.statSync(file);
    const key = `${path.resolve(file)}:${st.size}:${st.mtimeMs}`;
    const cached = opened.get(key);
    if (cached) return cached;
    const f = openTensorFile(file);
    try {
      const adapter = IPAdapter.fromFile(file, f, `ip-adapter:${key}`);
      opened.set(key, adapter);
      return adapter;
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /** From a file's tensors named `image_proj.<k>` / `ip_adapter.<n>.<k>` (the official layout; .bin dicts flattened the same way). */
  private static fromFile(file: string, f: TensorFile, id: string): IPAdapter {
    const proj = new Map<string, readonly number[]>();
    const layers = new Map<number, Map<string, readonly number[]>>();
    for (const [key, info] of f.tensors) {
      if (key.startsWith('image_proj.')) { proj.set(key.slice('image_proj.'.length), info.shape); continue; }
      const m = /^ip_adapter\.(\d+)\.(to_[kv]_ip\.weight)$/.exec(key);
      if (m) {
        const n = Number(m[1]);
        if (!layers.has(n)) layers.set(n, new Map());
        layers.get(n)!.set(m[2]!, info.shape);
        continue;
      }
      throw new FileFormatError(file, 'not an IP-Adapter tensor (expected image_proj.* and ip_adapter.<n>.to_k_ip/to_v_ip.weight, the official layout)', key);
    }
    if (proj.size === 0) throw new FileFormatError(file, 'no image_proj.* tensors: not an IP-Adapter file in the official layout', 'image_proj');
    if (layers.size === 0) throw new FileFormatError(file, 'no ip_adapter.<n>.to_k_ip/to_v_ip tensors: not an IP-Adapter file in the official layout', 'ip_adapter');
    const { spec, entries } = convertImageProjection(file, proj);
    const ns = [...layers.keys()].sort((a, b) => a - b);
    const layerEntries = new Map<string, Entry>();
    ns.forEach((n, i) => {
      if (n !== 2 * i + 1) throw new FileFormatError(file, `cross-attention layers must be numbered 1, 3, 5, ... (got ${ns.slice(0, 6).join(', ')}${ns.length > 6 ? ', ...' : ''})`, `ip_adapter.${n}`);
      const l = layers.get(n)!;
      for (const w of ['to_k_ip.weight', 'to_v_ip.weight']) {
        const shape = l.get(w);
        if (!shape) throw new FileFormatError(file, 'missing weight', `ip_adapter.${n}.${w}`);
        if (shape.length !== 2 || shape[1] !== spec.crossAttentionDim) {
          throw new FileFormatError(file, `expected [width, ${spec.crossAttentionDim}] (the image tokens' width), got [${shape.join(', ')}]`, `ip_adapter.${n}.${w}`);
        }
        layerEntries.set(`ip_adapter.${n}.${w}`, { stored: `ip_adapter.${n}.${w}`, shape });
      }
    });
    const layerSource = new AdapterSource(file, f, layerEntries);
    const views = new Map(ns.map((n) => [n, new WeightsView(layerSource, `ip_adapter.${n}`)] as const));
    return new IPAdapter(file, spec, new WeightsView(new AdapterSource(file, f, entries)), views, id);
  }
}

/** Flat `image_proj.<k>` / `ip_adapter.<n>.<k>` tensors of a safetensors file or an official `.bin` pickle. */
export function readAdapterTensors(file: string): Map<string, Tensor> {
  const f = openTensorFile(file);
  try {
    const out = new Map<string, Tensor>();
    for (const key of f.tensors.keys()) out.set(key, f.readFloat32(key));
    return out;
  } finally {
    f.close();
  }
}

function shapeOf(file: string, proj: ReadonlyMap<string, readonly number[]>, key: string, rank: number): readonly number[] {
  const shape = proj.get(key);
  if (!shape) throw new FileFormatError(file, 'missing weight', `image_proj.${key}`);
  if (shape.length !== rank) throw new FileFormatError(file, `expected a ${rank}-d tensor, got [${shape.join(', ')}]`, `image_proj.${key}`);
  return shape;
}

/** Official projection names -> diffusers' (ImageProjection or IPAdapterPlusImageProjection), and its shape. */
function convertImageProjection(file: string, proj: ReadonlyMap<string, readonly number[]>): { spec: IPAdapterProjectionSpec; entries: Map<string, Entry> } {
  const renamed = new Map<string, Entry>();
  const take = (from: string, to: string): void => {
    const shape = proj.get(from);
    if (!shape) throw new FileFormatError(file, 'missing weight', `image_proj.${from}`);
    renamed.set(to, { stored: `image_proj.${from}`, shape });
  };
  if (proj.has('proj.weight')) {
    // IP-Adapter (base): diffusers always makes 4 tokens from the Linear's output.
    const [out, inF] = shapeOf(file, proj, 'proj.weight', 2) as [number, number];
    const numTokens = 4;
    if (out % numTokens !== 0) throw new FileFormatError(file, `expected rows divisible by ${numTokens} tokens, got [${out}, ${inF}]`, 'image_proj.proj.weight');
    take('proj.weight', 'image_embeds.weight');
    take('proj.bias', 'image_embeds.bias');
    take('norm.weight', 'norm.weight');
    take('norm.bias', 'norm.bias');
    const spec: ImageProjectionSpec = { kind: 'base', imageEmbedDim: inF, crossAttentionDim: out / numTokens, numTokens };
    checkExtra(file, proj, renamed.size);
    return { spec, entries: renamed };
  }
  if (proj.has('latents') && proj.has('proj_in.weight')) {
    const [, numTokens, hiddenDim] = shapeOf(file, proj, 'latents', 3) as [number, number, number];
    const [, embedDim] = shapeOf(file, proj, 'proj_in.weight', 2) as [number, number];
    const [outDim] = shapeOf(file, proj, 'proj_out.weight', 2) as [number, number];
    let depth = 0;
    while (proj.has(`layers.${depth}.0.to_q.weight`)) depth++;
    if (depth === 0) throw new FileFormatError(file, 'Resampler without layers', 'image_proj.layers.0.0.to_q.weight');
    const [inner] = shapeOf(file, proj, 'layers.0.0.to_q.weight', 2) as [number, number];
    const [ffInner] = shapeOf(file, proj, 'layers.0.1.1.weight', 2) as [number, number];
    for (const k of ['latents', 'proj_in.weight', 'proj_in.bias', 'proj_out.weight', 'proj_out.bias', 'norm_out.weight', 'norm_out.bias']) take(k, k);
    for (let i = 0; i < depth; i++) {
      const o = `layers.${i}`;
      take(`${o}.0.norm1.weight`, `${o}.ln0.weight`);
      take(`${o}.0.norm1.bias`, `${o}.ln0.bias`);
      take(`${o}.0.norm2.weight`, `${o}.ln1.weight`);
      take(`${o}.0.norm2.bias`, `${o}.ln1.bias`);
      take(`${o}.0.to_q.weight`, `${o}.attn.to_q.weight`);
      take(`${o}.0.to_out.weight`, `${o}.attn.to_out.0.weight`);
      take(`${o}.1.0.weight`, `${o}.ff.0.weight`);
      take(`${o}.1.0.bias`, `${o}.ff.0.bias`);
      take(`${o}.1.1.weight`, `${o}.ff.1.net.0.proj.weight`);
      take(`${o}.1.3.weight`, `${o}.ff.1.net.2.weight`);
      // to_kv rows [0, inner) are the keys, [inner, 2 inner) the values.
      const kv = proj.get(`${o}.0.to_kv.weight`);
      const stored = `image_proj.${o}.0.to_kv.weight`;
      if (!kv) throw new FileFormatError(file, 'missing weight', stored);
      if (kv.length !== 2 || kv[0] !== 2 * inner) throw new FileFormatError(file, `expected [${2 * inner}, ${hiddenDim}] (keys and values), got [${kv.join(', ')}]`, stored);
      renamed.set(`${o}.attn.to_k.weight`, { stored, shape: [inner, kv[1]!], rows: [0, inner] });
      renamed.set(`${o}.attn.to_v.weight`, { stored, shape: [inner, kv[1]!], rows: [inner, inner] });
    }
    if (inner % RESAMPLER_DIM_HEAD !== 0) throw new FileFormatError(file, `diffusers infers heads = rows / ${RESAMPLER_DIM_HEAD}; got ${inner} rows`, 'image_proj.layers.0.0.to_q.weight');
    const spec: PlusImageProjectionSpec = {
      kind: 'plus', imageEmbedDim: embedDim, crossAttentionDim: outDim, numTokens, hiddenDim,
      heads: inner / RESAMPLER_DIM_HEAD, dimHead: RESAMPLER_DIM_HEAD, depth, ffInner,
    };
    checkExtra(file, proj, renamed.size - depth); // to_kv became two tensors
    return { spec, entries: renamed };
  }
  const keys = [...proj.keys()].slice(0, 4).map((k) => `image_proj.${k}`).join(', ');
  throw new FileFormatError(file, `unsupported IP-Adapter image projection (supported: IP-Adapter with image_proj.proj/norm, IP-Adapter Plus with the Resampler image_proj.latents/proj_in/layers); found ${keys}`, 'image_proj');
}

function checkExtra(file: string, proj: ReadonlyMap<string, readonly number[]>, used: number): void {
  if (used === proj.size) return;
  throw new FileFormatError(file, `the image projection has ${proj.size} tensors but this layout uses ${used}: a variant visprompt does not know`, 'image_proj');
}
