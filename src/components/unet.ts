/**
 * The denoising UNet of a checkpoint: one compiled graph per (batch, latent size, method variant).
 * A variant (an image-prompt method, h-space injection, ControlNet residuals) contributes hooks and
 * extra graph inputs; the plain model is the variant-free graph.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { gradients } from '../graph/autodiff.js';
import { compile, type Feed } from '../graph/session.js';
import { precisionKey, usePrecision, type Precision } from '../graph/quantize.js';
import type { WeightsView } from '../io/weights.js';
import type { UNetHooks } from '../models/hooks.js';
import { guidanceScaleEmbedding } from '../models/added-embedding.js';
import { unet2DConditionModel, type DenoiserInputs, type UNet2DConditionConfig } from '../models/unet2d-condition.js';
import { unet2DModel, type UNet2DConfig } from '../models/unet2d.js';
import type { Tensor } from '../tensor.js';

export interface UNetVariant {
  /** Everything that decides the graph's structure (method name, hooked layers, ...). */
  readonly key: string;
  /** Declare extra inputs on `g` and return the hooks; `batch` is the number of UNet rows, `inputs` the UNet's own. */
  hooks(g: Graph, batch: number, inputs: DenoiserInputs): UNetHooks;
  /** Extra named outputs (tapped values) the caller wants back. */
  readonly outputs?: readonly string[];
}

export interface AddedConditioning {
  readonly textEmbeds: Tensor;
  readonly timeIds: Tensor;
}

export interface UNetCall {
  /** [B, C, h, w] */
  readonly sample: Tensor;
  /** One timestep per row (or one for all). */
  readonly timestep: number | readonly number[];
  /** [B, L, D]; absent for unconditional (pixel-space UNet2DModel) networks. */
  readonly encoderHiddenStates?: Tensor;
  /** Pooled text [B, P] and micro-conditioning time ids [B, 6], for UNets with added conditioning (SDXL); ignored by others. */
  readonly addedCond?: AddedConditioning;
  /** [B, time_cond_proj_dim] guidance-scale embedding, for UNets with time_cond_proj_dim (LCM); ignored by others. */
  readonly timestepCond?: Tensor;
  readonly variant?: UNetVariant;
  /** Values of the variant's extra inputs. */
  readonly feeds?: Record<string, Feed>;
}

/** The denoiser's architecture: text-conditioned latent UNet (SD) or unconditional pixel UNet (DDPM). */
export type DenoiserConfig = { kind: 'conditional'; unet: UNet2DConditionConfig } | { kind: 'pixel'; unet: UNet2DConfig };

export class UNet {
  /** `precision` int8: linear layers and convolutions quantized (graph/quantize.ts); gradient graphs (unetVJP) stay float32. */
  constructor(readonly arch: DenoiserConfig, readonly weights: WeightsView, readonly id: string, readonly precision: Precision = 'fp32') {}

  get conditional(): boolean { return this.arch.kind === 'conditional'; }
  get inChannels(): number { return this.arch.unet.inChannels; }
  get sampleSize(): number { return this.arch.unet.sampleSize; }
  /** Only for text-conditioned UNets. */
  get config(): UNet2DConditionConfig {
    if (this.arch.kind !== 'conditional') throw new Error('UNet2DModel has no text-conditioning config');
    return this.arch.unet;
  }

  /** Noise prediction (or v / sample, per the scheduler's prediction_type) plus any variant outputs. */
  async run(call: UNetCall): Promise<{ noisePred: Tensor; extra: Record<string, Tensor> }> {
    const { sample, encoderHiddenStates: ehs, variant } = call;
    const b = sample.shape[0]!;
    const ts = typeof call.timestep === 'number' ? Array<number>(b).fill(call.timestep) : call.timestep;
    if (ts.length !== b) throw new Error(`UNet: ${ts.length} timesteps for ${b} rows`);
    if (this.conditional !== (ehs !== undefined)) throw new Error(this.conditional ? 'UNet: text-conditioned model needs encoder_hidden_states' : 'UNet2DModel takes no encoder_hidden_states');
    const extraFeeds = this.conditioningFeeds(call);
    const key = `unet:${this.id}:${sample.shape.join('x')}:${ehs?.shape.join('x') ?? '-'}:${Object.values(extraFeeds).map((f) => f.shape.join('x')).join(':')}:${variant?.key ?? 'plain'}${precisionKey(this.precision)}`;
    const session = await compile(key, () => {
      const g = usePrecision(new Graph('unet'), this.precision);
      const x = g.input('sample', sample.shape);
      const t = g.input('timestep', [b]);
      const c = ehs ? g.input('encoder_hidden_states', ehs.shape) : undefined;
      const inputs = { sample: x, timestep: t, encoderHiddenStates: c, ...conditioningInputs(g, extraFeeds) };
      const hooks = variant?.hooks(g, b, inputs);
      const taps = new Set(variant?.outputs ?? []);
      const tapped = new Map<string, Graph['inputs'][number]>();
      const withTaps: UNetHooks = { ...hooks, tap: (name, v) => { hooks?.tap?.(name, v); if (taps.has(name)) tapped.set(name, v); } };
      g.output('noise_pred', this.arch.kind === 'conditional'
        ? unet2DConditionModel({ ...inputs, encoderHiddenStates: c! }, this.weights, this.arch.unet, withTaps)
        : unet2DModel(x, t, this.weights, this.arch.unet, withTaps));
      for (const [name, v] of tapped) g.output(name, v);
      return g;
    });
    const r = await session.run({ sample, timestep: { shape: [b], data: Float32Array.from(ts) }, ...(ehs ? { encoder_hidden_states: ehs } : {}), ...extraFeeds, ...call.feeds });
    const { noise_pred: noisePred, ...extra } = r;
    return { noisePred: noisePred!, extra };
  }

  /** Whether this UNet takes the guidance scale as an embedding (LCM) instead of running classifier-free guidance. */
  get embedsGuidance(): boolean { return this.arch.kind === 'conditional' && this.arch.unet.timeCondProjDim !== null; }

  /** The guidance-scale embedding rows this UNet takes (LCM's timestep_cond), or undefined when it takes none. */
  guidanceCond(guidance: number, batch: number): Tensor | undefined {
    if (this.arch.kind !== 'conditional' || this.arch.unet.timeCondProjDim === null) return undefined;
    const dim = this.arch.unet.timeCondProjDim;
    const row = guidanceScaleEmbedding(guidance, dim);
    const data = new Float32Array(batch * dim);
    for (let i = 0; i < batch; i++) data.set(row, i * dim);
    return { shape: [batch, dim], data };
  }

  /** Feeds for the added conditioning this UNet uses (none for SD 1.x/2.x), checked against the batch. */
  conditioningFeeds(call: Pick<UNetCall, 'sample' | 'addedCond' | 'timestepCond'>): Record<string, Tensor> {
    if (this.arch.kind !== 'conditional') return {};
    const cfg = this.arch.unet;
    const b = call.sample.shape[0]!;
    const feeds: Record<string, Tensor> = {};
    const rowsOk = (name: string, t: Tensor): Tensor => {
      if (t.shape[0] !== b) throw new Error(`UNet: ${name} has ${t.shape[0]} rows for ${b} samples`);
      return t;
    };
    if (cfg.addition) {
      if (!call.addedCond) throw new Error('UNet: this UNet (addition_embed_type text_time) needs added conditioning (pooled text embeds and time ids)');
      feeds.text_embeds = rowsOk('text_embeds', call.addedCond.textEmbeds);
      feeds.time_ids = rowsOk('time_ids', call.addedCond.timeIds);
    }
    if (cfg.timeCondProjDim !== null) {
      if (!call.timestepCond) throw new Error('UNet: this UNet (time_cond_proj_dim) needs a guidance-scale embedding');
      feeds.timestep_cond = rowsOk('timestep_cond', call.timestepCond);
    }
    return feeds;
  }
}

/** Graph inputs for the added-conditioning feeds (names as conditioningFeeds makes them). */
function conditioningInputs(g: Graph, feeds: Record<string, Tensor>): { addedCond?: { textEmbeds: Value; timeIds: Value }; timestepCond?: Value } {
  const input = (name: string): Value | undefined => (feeds[name] ? g.input(name, feeds[name].shape) : undefined);
  const textEmbeds = input('text_embeds'), timeIds = input('time_ids'), timestepCond = input('timestep_cond');
  return { ...(textEmbeds && timeIds ? { addedCond: { textEmbeds, timeIds } } : {}), ...(timestepCond ? { timestepCond } : {}) };
}

/**
 * Vector-Jacobian product of one UNet call: given the cotangent of the noise prediction, the gradient
 * with respect to the sample and the text conditioning. The graph recomputes the forward pass inside
 * (so a chain of calls keeps only its inputs: checkpointing per call).
 */
export async function unetVJP(unet: UNet, call: UNetCall, cotangent: Tensor): Promise<{ dSample: Tensor; dEncoderHiddenStates: Tensor | undefined }> {
  const { sample, encoderHiddenStates: ehs } = call;
  const b = sample.shape[0]!;
  const ts = typeof call.timestep === 'number' ? Array<number>(b).fill(call.timestep) : call.timestep;
  const extraFeeds = unet.conditioningFeeds(call);
  const session = await compile(`unet-vjp:${unet.id}:${sample.shape.join('x')}:${ehs?.shape.join('x') ?? '-'}:${Object.values(extraFeeds).map((f) => f.shape.join('x')).join(':')}`, () => {
    const g = new Graph('unet_vjp');
    const x = g.input('sample', sample.shape);
    const t = g.input('timestep', [b]);
    const c = ehs ? g.input('encoder_hidden_states', ehs.shape) : undefined;
    const cot = g.input('cotangent', sample.shape);
    const out = unet.arch.kind === 'conditional' ? unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c!, ...conditioningInputs(g, extraFeeds) }, unet.weights, unet.arch.unet) : unet2DModel(x, t, unet.weights, unet.arch.unet);
    const loss = op.reduceSum(op.mul(out, cot), [0, 1, 2, 3], false);
    const [dx, dc] = gradients(g, loss, c ? [x, c] : [x]);
    g.output('d_sample', dx!);
    if (dc) g.output('d_encoder_hidden_states', dc);
    return g;
  });
  const r = await session.run({ sample, timestep: { shape: [b], data: Float32Array.from(ts) }, ...(ehs ? { encoder_hidden_states: ehs } : {}), ...extraFeeds, cotangent });
  return { dSample: r.d_sample!, dEncoderHiddenStates: r.d_encoder_hidden_states };
}

/**
 * Several variants in one graph: attention from the first that rewrites it; skip/mid hooks chained. One
 * variant may drop rows (keepRows) when the others cannot see rows after the drop (only skip/mid hooks,
 * which run before the up path, and no tapped outputs).
 */
export function composeVariants(variants: readonly (UNetVariant | undefined)[]): UNetVariant | undefined {
  const list = variants.filter((v): v is UNetVariant => v !== undefined);
  if (list.length <= 1) return list[0];
  return {
    key: list.map((v) => v.key).join('+'),
    outputs: list.flatMap((v) => v.outputs ?? []),
    hooks(g, batch, inputs) {
      const all = list.map((v) => v.hooks(g, batch, inputs));
      const droppers = all.filter((h) => h.keepRows);
      const blind = list.every((v) => !v.outputs?.length) && all.every((h) => h.keepRows || (!h.attention && !h.groupNorm && !h.tap));
      const dropper = droppers.length === 1 && blind ? droppers[0]! : undefined;
      return {
        ...(dropper ? { keepRows: (path: string, later: readonly string[]) => dropper.keepRows!(path, later) } : {}),
        attention: (call) => { for (const h of all) { const r = h.attention?.(call); if (r) return r; } return undefined; },
        groupNorm: (call) => { for (const h of all) { const r = h.groupNorm?.(call); if (r) return r; } return undefined; },
        skip: (k, s) => all.reduce((acc, h) => (h.skip ? h.skip(k, acc) : acc), s),
        midBlock: (x, temb) => all.reduce((acc, h) => (h.midBlock ? h.midBlock(acc, temb) : acc), x),
        tap: (name, v) => { for (const h of all) h.tap?.(name, v); },
      };
    },
  };
}
