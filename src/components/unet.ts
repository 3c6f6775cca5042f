/**
 * The denoising UNet of a checkpoint: one compiled graph per (batch, latent size, method variant).
 * A variant (an image-prompt method, h-space injection, ControlNet residuals) contributes hooks and
 * extra graph inputs; the plain model is the variant-free graph.
 */
import { Graph } from '../graph/ir.js';
import { compile, type Feed } from '../graph/session.js';
import type { WeightsView } from '../io/weights.js';
import type { UNetHooks } from '../models/hooks.js';
import { unet2DConditionModel, type UNet2DConditionConfig } from '../models/unet2d-condition.js';
import type { Tensor } from '../tensor.js';

export interface UNetVariant {
  /** Everything that decides the graph's structure (method name, hooked layers, ...). */
  readonly key: string;
  /** Declare extra inputs on `g` and return the hooks; `batch` is the number of UNet rows. */
  hooks(g: Graph, batch: number): UNetHooks;
  /** Extra named outputs (tapped values) the caller wants back. */
  readonly outputs?: readonly string[];
}

export interface UNetCall {
  /** [B, C, h, w] */
  readonly sample: Tensor;
  /** One timestep per row (or one for all). */
  readonly timestep: number | readonly number[];
  /** [B, L, D] */
  readonly encoderHiddenStates: Tensor;
  readonly variant?: UNetVariant;
  /** Values of the variant's extra inputs. */
  readonly feeds?: Record<string, Feed>;
}

export class UNet {
  constructor(readonly config: UNet2DConditionConfig, readonly weights: WeightsView, readonly id: string) {}

  /** Noise prediction (or v / sample, per the scheduler's prediction_type) plus any variant outputs. */
  async run(call: UNetCall): Promise<{ noisePred: Tensor; extra: Record<string, Tensor> }> {
    const { sample, encoderHiddenStates: ehs, variant } = call;
    const b = sample.shape[0]!;
    const ts = typeof call.timestep === 'number' ? Array<number>(b).fill(call.timestep) : call.timestep;
    if (ts.length !== b) throw new Error(`UNet: ${ts.length} timesteps for ${b} rows`);
    const key = `unet:${this.id}:${sample.shape.join('x')}:${ehs.shape.join('x')}:${variant?.key ?? 'plain'}`;
    const session = await compile(key, () => {
      const g = new Graph('unet');
      const x = g.input('sample', sample.shape);
      const t = g.input('timestep', [b]);
      const c = g.input('encoder_hidden_states', ehs.shape);
      const hooks = variant?.hooks(g, b);
      const taps = new Set(variant?.outputs ?? []);
      const tapped = new Map<string, Graph['inputs'][number]>();
      const withTaps: UNetHooks = { ...hooks, tap: (name, v) => { hooks?.tap?.(name, v); if (taps.has(name)) tapped.set(name, v); } };
      g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c }, this.weights, this.config, withTaps));
      for (const [name, v] of tapped) g.output(name, v);
      return g;
    });
    const r = await session.run({ sample, timestep: { shape: [b], data: Float32Array.from(ts) }, encoder_hidden_states: ehs, ...call.feeds });
    const { noise_pred: noisePred, ...extra } = r;
    return { noisePred: noisePred!, extra };
  }
}
