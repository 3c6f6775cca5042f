/**
 * diffusers' PNDMScheduler (Liu et al. 2022, pseudo numerical methods): with skip_prk_steps (as
 * Stable Diffusion ships it) the PLMS variant: N + 1 timesteps with the second one repeated
 * (876, 751, 751, 626, ...). Call 0 is a first-order step with eps_0; call 1 (same t as the step it
 * redoes) restarts from the saved sample with (eps_0 + eps_1) / 2; then Adams-Bashforth of order
 * 2, 3, 4 on the stored eps. Without skip_prk_steps the first 3 steps are Runge-Kutta (4 calls each).
 * The update is the paper's formula (9) in float32.
 */
import { FileFormatError, InputError } from '../errors.js';
import { checkInferenceSteps, checkSameLength, type Sampler, type SchedulerStepOptions, type SchedulerStepResult } from './sampler.js';
import { SchedulerConfigReader, TIMESTEP_SPACINGS, trainingSchedule, type TimestepSpacing, type TrainingSchedule } from './scheduler-config.js';
import { npArange, npLinspace, roundHalfEven } from './numpy.js';

const f = Math.fround;

export interface PndmOptions { source?: string }

export class PNDMScheduler implements Sampler {
  readonly schedule: TrainingSchedule;
  readonly skipPrkSteps: boolean;
  readonly predictionType: 'epsilon' | 'v_prediction';
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  readonly source: string;
  timesteps: number[] = [];
  private prkCount = 0;
  private numInferenceSteps = 0;
  private ets: Float32Array[] = [];
  private counter = 0;
  private curSample: Float32Array | undefined;
  private curModelOutput: Float32Array | undefined;

  constructor(raw: Record<string, unknown> = {}, options: PndmOptions = {}) {
    this.source = options.source ?? 'scheduler_config.json';
    const r = new SchedulerConfigReader(this.source, raw);
    this.schedule = trainingSchedule(r, { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', rescale: 'none' });
    this.skipPrkSteps = r.bool('skip_prk_steps', false);
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'v_prediction'], 'epsilon');
    this.timestepSpacing = r.oneOf<TimestepSpacing>('timestep_spacing', TIMESTEP_SPACINGS, 'leading');
    this.stepsOffset = r.int('steps_offset', 0);
    this.finalAlphaCumprod = r.bool('set_alpha_to_one', false) ? 1 : this.schedule.alphasCumprod[0]!;
  }

  setTimesteps(numInferenceSteps: number): void {
    const N = numInferenceSteps, T = this.schedule.numTrainTimesteps;
    checkInferenceSteps(N, T);
    if (!this.skipPrkSteps && N < 4) throw new InputError(`PNDM with Runge-Kutta warm-up steps (skip_prk_steps false) needs at least 4 steps, got ${N}`);
    if (this.skipPrkSteps && N < 2) throw new InputError(`PNDM (PLMS) needs at least 2 steps, got ${N}`);
    this.numInferenceSteps = N;
    let ts: number[]; // ascending
    if (this.timestepSpacing === 'linspace') ts = npLinspace(0, T - 1, N).map(roundHalfEven);
    else if (this.timestepSpacing === 'leading') ts = Array.from({ length: N }, (_, i) => i * Math.floor(T / N) + this.stepsOffset);
    else ts = npArange(T, 0, -T / N).map(roundHalfEven).reverse().map((v) => v - 1);
    let prk: number[] = [], plms: number[];
    if (this.skipPrkSteps) {
      plms = [...ts.slice(0, -1), ts[ts.length - 2]!, ts[ts.length - 1]!].reverse();
    } else {
      // the last 4 timesteps, each with its half step, repeated as RK4 needs: t, t-h/2, t-h/2, t-h per step
      const half = Math.floor(Math.floor(T / N) / 2);
      const base = ts.slice(-4).flatMap((t) => [t, t + half]);
      prk = base.slice(0, -1).flatMap((t) => [t, t]).slice(1, -1).reverse();
      plms = ts.slice(0, -3).reverse();
    }
    this.prkCount = prk.length;
    this.timesteps = [...prk, ...plms];
    this.ets = [];
    this.counter = 0;
    this.curSample = undefined;
    this.curModelOutput = undefined;
  }

  scaleModelInput(sample: Float32Array): Float32Array { return sample; }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, _opts: SchedulerStepOptions = {}): SchedulerStepResult {
    checkSameLength(modelOutput, sample);
    if (this.numInferenceSteps === 0) throw new Error('call setTimesteps() before stepping the scheduler');
    if (!Number.isInteger(t)) throw new InputError(`PNDM timesteps are integers, got ${t}`);
    return { prevSample: this.counter < this.prkCount && !this.skipPrkSteps ? this.stepPrk(modelOutput, t, sample) : this.stepPlms(modelOutput, t, sample) };
  }

  private stepPrk(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    const ratio = Math.floor(this.schedule.numTrainTimesteps / this.numInferenceSteps);
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(ratio / 2);
    const prevT = t - diffToPrev;
    const from = this.timesteps[Math.floor(this.counter / 4) * 4]!;
    const acc = (w: number): void => {
      const c = f(w), cur = this.curModelOutput;
      this.curModelOutput = modelOutput.map((v, k) => (cur ? cur[k]! + f(c * v) : f(c * v)));
    };
    let eps = modelOutput;
    const phase = this.counter % 4;
    if (phase === 0) { acc(1 / 6); this.ets.push(modelOutput); this.curSample = sample; }
    else if (phase === 1 || phase === 2) acc(1 / 3);
    else {
      const cur = this.curModelOutput!, c = f(1 / 6);
      eps = cur.map((v, k) => v + f(c * modelOutput[k]!));
      this.curModelOutput = undefined;
    }
    const prev = this.prevSample(this.curSample ?? sample, from, prevT, eps);
    this.counter++;
    return prev;
  }

  private stepPlms(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    const ratio = Math.floor(this.schedule.numTrainTimesteps / this.numInferenceSteps);
    if (!this.skipPrkSteps && this.ets.length < 3) throw new Error('PNDM: the Runge-Kutta warm-up steps must run first');
    let prevT = t - ratio;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput);
    } else {
      prevT = t;
      t = t + ratio;
    }
    const e = this.ets, L = e.length;
    let eps: Float32Array;
    if (L === 1 && this.counter === 0) {
      eps = modelOutput;
      this.curSample = sample;
    } else if (L === 1 && this.counter === 1) {
      eps = modelOutput.map((v, k) => f(v + e[0]![k]!) / 2);
      sample = this.curSample!;
      this.curSample = undefined;
    } else if (L === 2) {
      eps = e[1]!.map((v, k) => f(f(3 * v) - e[0]![k]!) / 2);
    } else if (L === 3) {
      eps = e[2]!.map((v, k) => f(f(f(23 * v) - f(16 * e[1]![k]!)) + f(5 * e[0]![k]!)) / 12);
    } else {
      const c = f(1 / 24);
      eps = e[3]!.map((v, k) => c * f(f(f(f(55 * v) - f(59 * e[2]![k]!)) + f(37 * e[1]![k]!)) - f(9 * e[0]![k]!)));
    }
    const prev = this.prevSample(sample, t, prevT, eps);
    this.counter++;
    return prev;
  }

  /** Formula (9): x_prev = sqrt(a_prev / a_t) x - (a_prev - a_t) eps / (a_t sqrt(1 - a_prev) + sqrt(a_t (1 - a_t) a_prev)). */
  private prevSample(sample: Float32Array, t: number, prevT: number, modelOutput: Float32Array): Float32Array {
    const ac = this.schedule.alphasCumprod;
    if (t < 0 || t >= ac.length) throw new FileFormatError(this.source, `PNDM timestep ${t} is outside 0..${ac.length - 1}`);
    const a = ac[t]!, ap = prevT >= 0 ? ac[prevT]! : this.finalAlphaCumprod;
    const b = f(1 - a), bp = f(1 - ap);
    let eps = modelOutput;
    if (this.predictionType === 'v_prediction') {
      const sa = f(Math.sqrt(a)), sb = f(Math.sqrt(b));
      eps = modelOutput.map((v, k) => f(sa * v) + f(sb * sample[k]!));
    }
    const sampleCoeff = f(Math.sqrt(f(ap / a)));
    const denom = f(f(a * f(Math.sqrt(bp))) + f(Math.sqrt(f(f(a * b) * ap))));
    const diff = f(ap - a);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) out[k] = f(sampleCoeff * sample[k]!) - f(f(diff * eps[k]!) / denom);
    return out;
  }
}
