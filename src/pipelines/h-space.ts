/**
 * The generative process with an h-space edit (InjectFusion, Asyrp): from x_T, each step where the edit
 * is on runs [x, x] through the UNet with h kept in the first half and edited in the second, then takes
 * the asymmetric step (x0 from eps(h'), direction from eps(h)); other steps are plain DDIM. Optional
 * omega calibration (InjectFusion): x_t is moved so that P(x_t) matches the std-matched edited P_t, then a
 * plain step is taken from there.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import { InputError } from '../errors.js';
import { hSpaceFeeds, hSpaceVariant, type HSpaceEdit } from '../methods/h-space.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { DDIMScheduler } from '../schedulers/ddim.js';
import { concatRows, hasNonFinite, rows, type Tensor } from '../tensor.js';
import { report, type RunControl } from './progress.js';
import { concatConditioning, type Conditioning } from '../components/prompt-conditioner.js';
import { previewHook, type PreviewOptions } from './preview.js';

export interface HSpaceStep {
  /** Whether the edit is applied at this step. */
  readonly on: boolean;
  readonly gamma?: number;
  readonly strength?: number;
  /** InjectFusion: the content's h at this timestep, [B, C, h, w]. */
  readonly content?: Tensor;
}

export interface HSpaceSamplingOptions extends RunControl {
  xT: Tensor;
  /** Text conditioning per row (SD, SDXL); undefined for pixel-space models. */
  context?: Conditioning;
  steps: number;
  edit: HSpaceEdit;
  plan: (i: number, t: number) => HSpaceStep;
  /** The mid-block (h-space) shape for one row, [1, C, h, w]. */
  hShape: readonly number[];
  mask?: Tensor;
  /** DDIM eta at timestep t (InjectFusion / Asyrp: 0 above t_noise / t_boost, 1 below). */
  etaAt: (t: number) => number;
  /** Scale of the direction term at t when the edit is on (InjectFusion's dt_lambda). */
  dtLambdaAt?: (t: number) => number;
  omega?: number;
  noise?: NoiseSource;
  /** Inspection: at each edited step, h and the edited h' of the edited rows. */
  onHSpace?: (t: number, h: Tensor, edited: Tensor) => void;
  /** Decoded previews of each step's x0 prediction every N steps, reported as progress events. */
  preview?: PreviewOptions;
}

/** Per-row std over all but the first axis (torch.std, unbiased). */
function rowStd(x: Float32Array, n: number, row: number): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[row * n + i]!;
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) { const d = x[row * n + i]! - mean; ss += d * d; }
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

export async function hSpaceSample(ck: Checkpoint, o: HSpaceSamplingOptions): Promise<Tensor> {
  const unet = ck.unet();
  const scheduler = new DDIMScheduler(ck.schedulerConfig().raw, { source: ck.schedulerConfig().file });
  scheduler.setTimesteps(o.steps);
  const b = o.xT.shape[0]!;
  const variant = hSpaceVariant(o.edit, o.hShape);
  const doubled = o.context ? concatConditioning([o.context, o.context]) : undefined;
  let x = o.xT;
  const ts = scheduler.timesteps;
  const preview = previewHook(ck, o);
  // After step i: the x0 the step aimed at (the edited one on edited steps) and the new x_t.
  const previewStep = async (i: number, x0: Float32Array): Promise<void> => preview?.(i + 1, ts.length, { shape: x.shape, data: x0 }, x);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    report(o, 'denoise', i, ts.length);
    const plan = o.plan(i, t);
    const eta = o.etaAt(t);
    if (!plan.on) {
      const { noisePred } = await unet.run({ sample: x, timestep: t, ...o.context });
      const r = scheduler.step(noisePred.data, t, x.data, { eta, noise: o.noise });
      x = { shape: x.shape, data: r.prevSample };
      await previewStep(i, r.predOriginalSample);
      continue;
    }
    const feeds = hSpaceFeeds(o.edit, b, { on: true, gamma: plan.gamma, strength: plan.strength, content: plan.content, mask: o.mask });
    const { noisePred, extra } = await unet.run({ sample: concatRows([x, x]), timestep: t, ...doubled, variant, feeds });
    o.onHSpace?.(t, rows(extra.mid_block!, b, 2 * b), rows(extra['mid_block.edited']!, b, 2 * b));
    const plain = rows(noisePred, 0, b).data, edited = rows(noisePred, b, 2 * b).data;
    if (o.omega) {
      // InjectFusion's calibration: std-match the edited x0 to the plain one, move x_t accordingly, then a plain step.
      const p = scheduler.predictAt(plain, t, x.data), q = scheduler.predictAt(edited, t, x.data);
      const n = x.data.length / b;
      const { a, b: sb } = scheduler.sqrtAlphaProd(t);
      const moved = new Float32Array(x.data.length);
      for (let r = 0; r < b; r++) {
        const P = rowStd(p.predOriginalSample, n, r), Q = rowStd(q.predOriginalSample, n, r);
        for (let j = r * n; j < (r + 1) * n; j++) {
          const newP = Q.mean + (q.predOriginalSample[j]! - Q.mean) * (P.std / Q.std);
          moved[j] = x.data[j]! + a * (newP - p.predOriginalSample[j]!) + o.omega * sb * (q.predEpsilon[j]! - p.predEpsilon[j]!);
        }
      }
      x = { shape: x.shape, data: moved };
      const again = await unet.run({ sample: x, timestep: t, ...o.context });
      const r = scheduler.step(again.noisePred.data, t, x.data, { eta, noise: o.noise });
      x = { shape: x.shape, data: r.prevSample };
      await previewStep(i, r.predOriginalSample);
    } else {
      const r = scheduler.asymmetricStep(plain, edited, t, x.data, { eta, noise: o.noise, dtLambda: o.dtLambdaAt?.(t) ?? 1 });
      x = { shape: x.shape, data: r.prevSample };
      await previewStep(i, r.predOriginalSample);
    }
    o.signal?.throwIfAborted();
  }
  report(o, 'denoise', ts.length, ts.length);
  if (hasNonFinite(x)) throw new InputError('the h-space edit produced NaN or infinite values');
  return x;
}

/** The h-space shape of a model for one row at a sample size: the mid block runs at the coarsest level. */
export function hSpaceShape(ck: Checkpoint, sample: readonly number[]): number[] {
  const unet = ck.unet();
  const ch = unet.arch.unet.blockOutChannels;
  const down = 2 ** (ch.length - 1);
  const [, , h, w] = sample as [number, number, number, number];
  if (h % down !== 0 || w % down !== 0) throw new InputError(`sample size ${w}x${h} is not divisible by ${down} (the UNet's downsampling); resize the image`);
  return [1, ch[ch.length - 1]!, h / down, w / down];
}
