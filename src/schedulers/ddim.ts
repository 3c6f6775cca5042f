/**
 * diffusers 0.30 `DDIMScheduler` and `DDIMInverseScheduler`, in float32 op by op as torch computes them:
 * every scheduler quantity is a 0-dim float32 tensor (alphas_cumprod[t], 1 - a, a ** 0.5 = sqrt, ...),
 * every tensor op rounds to float32, and python floats (eta, clip range) are cast to float32 first.
 *
 * step() is composed of two exported pieces so that methods which steer the reverse process (Asyrp's
 * asymmetric step, InjectFusion, ...) can recombine them: `predictOriginalAndEpsilon` (x0 and eps from
 * the model output) and `ddimUpdate` (x_prev from x0, eps and alpha_prod_t_prev).
 */
import { FileFormatError, InputError } from '../errors.js';
import type { NoiseSource } from '../noise/gaussian.js';
import { betasForAlphaBar, cumprodF32, oneMinus, rescaleZeroTerminalSnr, torchLinspaceF32, type TorchLinspaceFlavor } from './betas.js';

const f = Math.fround;

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

/** A diffusers `scheduler_config.json`, snake_case as on disk. Missing keys take diffusers' defaults. */
export interface DdimConfigJson {
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: string;
  trained_betas?: number[] | null;
  clip_sample?: boolean;
  clip_sample_range?: number;
  set_alpha_to_one?: boolean;
  steps_offset?: number;
  prediction_type?: string;
  timestep_spacing?: string;
  thresholding?: boolean;
  dynamic_thresholding_ratio?: number;
  sample_max_value?: number;
  rescale_betas_zero_snr?: boolean;
  [other: string]: unknown;
}

/** The validated configuration (diffusers' names, camelCase). */
export interface DdimConfig {
  readonly numTrainTimesteps: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly betaSchedule: BetaSchedule;
  readonly trainedBetas: readonly number[] | null;
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
  readonly setAlphaToOne: boolean;
  readonly stepsOffset: number;
  readonly predictionType: PredictionType;
  readonly timestepSpacing: TimestepSpacing;
  readonly thresholding: boolean;
  readonly rescaleBetasZeroSnr: boolean;
}

export interface DdimOptions {
  /** Where the config came from, for error messages (default 'scheduler_config.json'). */
  source?: string;
  /** Which torch.linspace to reproduce for the betas (default 'torch1', matching the goldens). */
  linspace?: TorchLinspaceFlavor;
}

const BETA_SCHEDULES: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2'];
const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction', 'sample'];

/**
 * Validates a scheduler config. `inverse` follows DDIMInverseScheduler: no 'linspace' spacing and no
 * thresholding option (diffusers ignores that key there). Unknown keys (`_class_name`,
 * `skip_prk_steps`, ...) are ignored, as diffusers' from_config does.
 */
export function parseDdimConfig(raw: unknown, source = 'scheduler_config.json', inverse = false): DdimConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FileFormatError(source, 'scheduler config is not a JSON object');
  const c = raw as Record<string, unknown>;
  const bad = (key: string, expected: string): never => {
    throw new FileFormatError(source, `expected ${expected}, got ${JSON.stringify(c[key])}`, key);
  };
  const num = (key: string, dflt: number, check: (v: number) => boolean = Number.isFinite, expected = 'a finite number'): number => {
    const v = c[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !check(v)) bad(key, expected);
    return v as number;
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = c[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') bad(key, 'true or false');
    return v as boolean;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], dflt: T): T => {
    const v = c[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) bad(key, `one of ${allowed.join(', ')}`);
    return v as T;
  };
  const numTrainTimesteps = num('num_train_timesteps', 1000, (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
  let trainedBetas: number[] | null = null;
  const tb = c['trained_betas'];
  if (tb !== undefined && tb !== null) {
    if (!Array.isArray(tb) || !tb.every((v) => typeof v === 'number' && v >= 0 && v < 1)) bad('trained_betas', 'null or a list of numbers in [0, 1)');
    if ((tb as number[]).length !== numTrainTimesteps) {
      throw new FileFormatError(source, `expected ${numTrainTimesteps} betas (num_train_timesteps), got ${(tb as number[]).length}`, 'trained_betas');
    }
    trainedBetas = [...(tb as number[])];
  }
  const thresholding = inverse ? false : bool('thresholding', false);
  if (thresholding) {
    throw new FileFormatError(source, 'dynamic thresholding (pixel-space models such as DeepFloyd IF) is not supported; expected false, got true', 'thresholding');
  }
  return {
    numTrainTimesteps,
    betaStart: num('beta_start', 0.0001),
    betaEnd: num('beta_end', 0.02),
    betaSchedule: oneOf('beta_schedule', BETA_SCHEDULES, 'linear'),
    trainedBetas,
    clipSample: bool('clip_sample', true),
    clipSampleRange: num('clip_sample_range', 1.0, (v) => Number.isFinite(v) && v > 0, 'a positive number'),
    setAlphaToOne: bool('set_alpha_to_one', true),
    stepsOffset: num('steps_offset', 0, Number.isSafeInteger, 'an integer'),
    predictionType: oneOf('prediction_type', PREDICTION_TYPES, 'epsilon'),
    timestepSpacing: oneOf<TimestepSpacing>('timestep_spacing', inverse ? ['leading', 'trailing'] : ['leading', 'trailing', 'linspace'], 'leading'),
    thresholding,
    rescaleBetasZeroSnr: bool('rescale_betas_zero_snr', false),
  };
}

// ---------------------------------------------------------------------------------------------
// The pieces of a DDIM step

/** `x ** 0.5` of a float32 scalar: torch's pow with exponent 0.5 is a (correctly rounded) sqrt. */
function sqrtF(x: number): number { return f(Math.sqrt(x)); }

/**
 * Predicted x0 and epsilon from a model output at a timestep whose alphas_cumprod is `alphaProdT`
 * (diffusers' step, part 3), before any clipping.
 */
export function predictOriginalAndEpsilon(
  predictionType: PredictionType,
  modelOutput: Float32Array,
  sample: Float32Array,
  alphaProdT: number,
): { predOriginalSample: Float32Array; predEpsilon: Float32Array } {
  checkSameLength(modelOutput, sample);
  const a = f(alphaProdT);
  const betaProdT = f(1 - a);
  const sa = sqrtF(a);
  const sb = sqrtF(betaProdT);
  const n = sample.length;
  const x0 = new Float32Array(n);
  const eps = new Float32Array(n);
  switch (predictionType) {
    case 'epsilon':
      // (sample - beta_prod_t ** 0.5 * model_output) / alpha_prod_t ** 0.5
      for (let i = 0; i < n; i++) x0[i] = f(sample[i]! - f(sb * modelOutput[i]!)) / sa;
      eps.set(modelOutput);
      break;
    case 'sample':
      x0.set(modelOutput);
      // (sample - alpha_prod_t ** 0.5 * pred_original_sample) / beta_prod_t ** 0.5
      for (let i = 0; i < n; i++) eps[i] = f(sample[i]! - f(sa * modelOutput[i]!)) / sb;
      break;
    case 'v_prediction':
      for (let i = 0; i < n; i++) {
        x0[i] = f(sa * sample[i]!) - f(sb * modelOutput[i]!);
        eps[i] = f(sa * modelOutput[i]!) + f(sb * sample[i]!);
      }
      break;
    default:
      throw new InputError(`prediction_type must be one of ${PREDICTION_TYPES.join(', ')}, got ${JSON.stringify(predictionType)}`);
  }
  return { predOriginalSample: x0, predEpsilon: eps };
}

/** `pred_original_sample.clamp(-range, range)` in place (the range is cast to float32 as torch does). */
export function clipSampleInPlace(x: Float32Array, range: number): Float32Array {
  const r = f(range);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v > r) x[i] = r;
    else if (v < -r) x[i] = -r;
  }
  return x;
}

/** diffusers' `_get_variance`: (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), in float32. */
export function ddimVariance(alphaProdT: number, alphaProdTPrev: number): number {
  const a = f(alphaProdT);
  const ap = f(alphaProdTPrev);
  return f(f(f(1 - ap) / f(1 - a)) * f(1 - f(a / ap)));
}

export interface DdimUpdateOptions {
  /** sigma_t = eta * sqrt(variance) (default 0: deterministic DDIM). */
  stdDevT?: number;
  /** Standard-normal noise, required when stdDevT > 0. */
  noise?: Float32Array;
}

/**
 * diffusers' step, parts 6-7 (+ the eta noise):
 * x_prev = sqrt(a_prev) * x0 + sqrt(1 - a_prev - sigma^2) * eps [+ sigma * noise].
 */
export function ddimUpdate(
  predOriginalSample: Float32Array,
  predEpsilon: Float32Array,
  alphaProdTPrev: number,
  opts: DdimUpdateOptions = {},
): Float32Array {
  checkSameLength(predOriginalSample, predEpsilon);
  const ap = f(alphaProdTPrev);
  const std = f(opts.stdDevT ?? 0);
  const dirCoef = sqrtF(f(f(1 - ap) - f(std * std)));
  const sap = sqrtF(ap);
  const n = predOriginalSample.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(sap * predOriginalSample[i]!) + f(dirCoef * predEpsilon[i]!);
  if (std > 0) {
    const noise = opts.noise;
    if (!noise) throw new InputError('a DDIM step with eta > 0 needs variance noise');
    if (noise.length !== n) throw new InputError(`variance noise has ${noise.length} values, the sample ${n}`);
    for (let i = 0; i < n; i++) out[i] = out[i]! + f(std * noise[i]!);
  }
  return out;
}

function checkSameLength(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new InputError(`model output has ${a.length} values but the sample has ${b.length}`);
}

// ---------------------------------------------------------------------------------------------

/** numpy's round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.arange(start, stop, step)` for floats: length ceil((stop-start)/step), values start + i*delta with delta = (start+step) - start. */
function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (len === 0) return out;
  out.push(start);
  if (len === 1) return out;
  const second = start + step;
  out.push(second);
  const delta = second - start;
  for (let i = 2; i < len; i++) out.push(start + i * delta);
  return out;
}

/** State and arithmetic shared by the forward and inverse schedulers. */
export abstract class DdimBase {
  readonly config: DdimConfig;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  numInferenceSteps: number | undefined;
  timesteps: number[];
  protected constructor(config: DdimConfig, linspace: TorchLinspaceFlavor) {
    this.config = config;
    const T = config.numTrainTimesteps;
    let betas: Float32Array;
    if (config.trainedBetas) betas = Float32Array.from(config.trainedBetas);
    else if (config.betaSchedule === 'linear') betas = torchLinspaceF32(config.betaStart, config.betaEnd, T, linspace);
    else if (config.betaSchedule === 'scaled_linear') {
      betas = torchLinspaceF32(config.betaStart ** 0.5, config.betaEnd ** 0.5, T, linspace);
      for (let i = 0; i < T; i++) betas[i] = betas[i]! * betas[i]!;
    } else betas = betasForAlphaBar(T);
    if (config.rescaleBetasZeroSnr) betas = rescaleZeroTerminalSnr(betas);
    this.betas = betas;
    this.alphas = oneMinus(betas);
    this.alphasCumprod = cumprodF32(this.alphas);
    this.timesteps = [];
  }

  /** `alphas_cumprod[t]`, with a clear error instead of an out-of-range read. */
  protected cumprodAt(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new InputError(`timestep ${t} is outside the scheduler's range 0..${this.alphasCumprod.length - 1}`);
    }
    return this.alphasCumprod[t]!;
  }

  protected stepRatio(): number {
    if (this.numInferenceSteps === undefined) throw new Error('call setTimesteps() before stepping the scheduler');
    return Math.floor(this.config.numTrainTimesteps / this.numInferenceSteps);
  }

  protected checkSteps(n: number): void {
    const T = this.config.numTrainTimesteps;
    if (!Number.isSafeInteger(n) || n < 1 || n > T) {
      throw new InputError(`number of inference steps must be an integer from 1 to ${T} (num_train_timesteps), got ${n}`);
    }
  }

  /** Ties the model output to x0/eps with this scheduler's prediction type and clipping. */
  protected predict(modelOutput: Float32Array, sample: Float32Array, alphaProdT: number): { predOriginalSample: Float32Array; predEpsilon: Float32Array } {
    const r = predictOriginalAndEpsilon(this.config.predictionType, modelOutput, sample, alphaProdT);
    if (this.config.clipSample) clipSampleInPlace(r.predOriginalSample, this.config.clipSampleRange);
    return r;
  }

  /** Model inputs need no scaling for DDIM. */
  scaleModelInput(sample: Float32Array): Float32Array { return sample; }

  /** diffusers' `add_noise`: sqrt(a_t) * original + sqrt(1 - a_t) * noise, for one timestep. */
  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    checkSameLength(original, noise);
    const a = this.cumprodAt(t);
    const sa = sqrtF(a);
    const sb = sqrtF(f(1 - a));
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = f(sa * original[i]!) + f(sb * noise[i]!);
    return out;
  }

  /** diffusers' `get_velocity`: sqrt(a_t) * noise - sqrt(1 - a_t) * sample (the v-prediction target). */
  getVelocity(sample: Float32Array, noise: Float32Array, t: number): Float32Array {
    checkSameLength(sample, noise);
    const a = this.cumprodAt(t);
    const sa = sqrtF(a);
    const sb = sqrtF(f(1 - a));
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f(sa * noise[i]!) - f(sb * sample[i]!);
    return out;
  }
}

export interface DdimStepOptions {
  /** DDIM's eta (0: deterministic). */
  eta?: number;
  /** Variance noise for eta > 0: a tensor of the sample's size, or a source drawn from (randn([n])). */
  noise?: NoiseSource | Float32Array;
}

export interface DdimStepResult {
  prevSample: Float32Array;
  predOriginalSample: Float32Array;
}

/** diffusers' DDIMScheduler (use_clipped_model_output=False; thresholding rejected). */
export class DDIMScheduler extends DdimBase {
  /** alphas_cumprod used past the last step: 1, or alphas_cumprod[0] when set_alpha_to_one is false. */
  readonly finalAlphaCumprod: number;

  constructor(config: DdimConfigJson | DdimConfig = {}, options: DdimOptions = {}) {
    const source = options.source ?? 'scheduler_config.json';
    const parsed = isParsed(config) ? config : parseDdimConfig(config, source, false);
    super(parsed, options.linspace ?? 'torch1');
    this.finalAlphaCumprod = parsed.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
    const T = parsed.numTrainTimesteps;
    this.timesteps = Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkSteps(numInferenceSteps);
    const N = numInferenceSteps;
    const T = this.config.numTrainTimesteps;
    this.numInferenceSteps = N;
    let ts: number[];
    switch (this.config.timestepSpacing) {
      case 'linspace': {
        // np.linspace(0, T - 1, N).round()[::-1]
        const step = (T - 1) / (N - 1);
        ts = Array.from({ length: N }, (_, i) => (N > 1 && i === N - 1 ? T - 1 : N > 1 ? i * step : 0)).map(roundHalfEven).reverse();
        break;
      }
      case 'leading': {
        const ratio = Math.floor(T / N);
        ts = Array.from({ length: N }, (_, i) => (N - 1 - i) * ratio + this.config.stepsOffset);
        break;
      }
      case 'trailing':
        // As in diffusers, for some N (61, 103, ...) np.arange yields N + 1 values, the last being -1.
        ts = npArange(T, 0, -T / N).map((v) => roundHalfEven(v) - 1);
        break;
    }
    this.timesteps = ts;
  }

  /** The timestep the DDIM step at t moves to: t - T // N (diffusers' prev_timestep, may be negative). */
  prevTimestep(t: number): number {
    return t - this.stepRatio();
  }

  /** alpha_prod at a timestep, with the final alpha for t < 0 (as for alpha_prod_t_prev). */
  alphaProd(t: number): number {
    return t >= 0 ? this.cumprodAt(t) : this.finalAlphaCumprod;
  }

  /** diffusers' `_get_variance(t, prev_t)`. */
  variance(t: number, prevT: number): number {
    return ddimVariance(this.alphaProd(t), this.alphaProd(prevT));
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: DdimStepOptions = {}): DdimStepResult {
    const prevT = this.prevTimestep(t);
    const alphaProdT = this.cumprodAt(t);
    const alphaProdTPrev = this.alphaProd(prevT);
    const { predOriginalSample, predEpsilon } = this.predict(modelOutput, sample, alphaProdT);
    const eta = opts.eta ?? 0;
    if (!Number.isFinite(eta) || eta < 0) throw new InputError(`eta must be a number >= 0, got ${eta}`);
    let stdDevT = 0;
    let noise: Float32Array | undefined;
    if (eta > 0) {
      stdDevT = f(f(eta) * sqrtF(ddimVariance(alphaProdT, alphaProdTPrev)));
      const src = opts.noise;
      if (src === undefined) throw new InputError('a DDIM step with eta > 0 needs variance noise (a tensor or a noise source)');
      noise = src instanceof Float32Array ? src : src.randn([sample.length]);
    } // with eta == 0 diffusers draws no noise, so a noise source is left untouched
    const prevSample = ddimUpdate(predOriginalSample, predEpsilon, alphaProdTPrev, { stdDevT, noise });
    return { prevSample, predOriginalSample };
  }

  /**
   * The asymmetric reverse step of Asyrp / InjectFusion: the predicted x0 (P_t) from the edited
   * prediction, the direction to x_t (D_t) from the plain one, D_t scaled by `dtLambda`. With
   * edited == plain and dtLambda 1 it is exactly `step`.
   */
  asymmetricStep(plain: Float32Array, edited: Float32Array, t: number, sample: Float32Array, opts: DdimStepOptions & { dtLambda?: number } = {}): DdimStepResult {
    const prevT = this.prevTimestep(t);
    const alphaProdT = this.cumprodAt(t);
    const alphaProdTPrev = this.alphaProd(prevT);
    const { predOriginalSample } = this.predict(edited, sample, alphaProdT);
    let { predEpsilon } = this.predict(plain, sample, alphaProdT);
    const dt = opts.dtLambda ?? 1;
    if (dt !== 1) predEpsilon = predEpsilon.map((v) => f(v * f(dt)));
    const eta = opts.eta ?? 0;
    let stdDevT = 0;
    let noise: Float32Array | undefined;
    if (eta > 0) {
      stdDevT = f(f(eta) * sqrtF(ddimVariance(alphaProdT, alphaProdTPrev)));
      if (opts.noise === undefined) throw new InputError('a DDIM step with eta > 0 needs variance noise (a tensor or a noise source)');
      noise = opts.noise instanceof Float32Array ? opts.noise : opts.noise.randn([sample.length]);
    }
    return { prevSample: ddimUpdate(predOriginalSample, predEpsilon, alphaProdTPrev, { stdDevT, noise }), predOriginalSample };
  }

  /** The predicted x0 and epsilon of a model output at t (with the configured clipping). */
  predictAt(modelOutput: Float32Array, t: number, sample: Float32Array): { predOriginalSample: Float32Array; predEpsilon: Float32Array } {
    return this.predict(modelOutput, sample, this.cumprodAt(t));
  }

  /** sqrt(alpha_prod_t) and sqrt(1 - alpha_prod_t), for calibrations written in terms of them. */
  sqrtAlphaProd(t: number): { a: number; b: number } {
    const a = this.cumprodAt(t);
    return { a: sqrtF(a), b: sqrtF(f(1 - a)) };
  }
}

/** diffusers' DDIMInverseScheduler: steps from t - T // N up to t (x_t -> x_{t+ratio} in inversion). */
export class DDIMInverseScheduler extends DdimBase {
  /** alphas_cumprod used before the first step: 1, or alphas_cumprod[0] when set_alpha_to_one is false. */
  readonly initialAlphaCumprod: number;

  constructor(config: DdimConfigJson | DdimConfig = {}, options: DdimOptions = {}) {
    const source = options.source ?? 'scheduler_config.json';
    const parsed = isParsed(config) ? config : parseDdimConfig(config, source, true);
    if (parsed.timestepSpacing === 'linspace') {
      throw new FileFormatError(source, 'DDIMInverseScheduler supports leading or trailing, got "linspace"', 'timestep_spacing');
    }
    super(parsed, options.linspace ?? 'torch1');
    this.initialAlphaCumprod = parsed.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
    this.timesteps = Array.from({ length: parsed.numTrainTimesteps }, (_, i) => i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.checkSteps(numInferenceSteps);
    const N = numInferenceSteps;
    const T = this.config.numTrainTimesteps;
    this.numInferenceSteps = N;
    if (this.config.timestepSpacing === 'trailing') {
      this.timesteps = npArange(T, 0, -T / N).reverse().map((v) => roundHalfEven(v) - 1);
    } else {
      const ratio = Math.floor(T / N);
      this.timesteps = Array.from({ length: N }, (_, i) => i * ratio + this.config.stepsOffset);
    }
  }

  /** The less noisy timestep an inverse step at t starts from: min(t - T // N, T - 1) (may be negative). */
  sourceTimestep(t: number): number {
    return Math.min(t - this.stepRatio(), this.config.numTrainTimesteps - 1);
  }

  /** alpha_prod at a timestep, with the initial alpha for t < 0 (as for the first inverse step). */
  alphaProd(t: number): number {
    return t >= 0 ? this.cumprodAt(t) : this.initialAlphaCumprod;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array): DdimStepResult {
    const alphaProdT = this.alphaProd(this.sourceTimestep(t));
    const alphaProdTNext = this.cumprodAt(t);
    const { predOriginalSample, predEpsilon } = this.predict(modelOutput, sample, alphaProdT);
    const prevSample = ddimUpdate(predOriginalSample, predEpsilon, alphaProdTNext);
    return { prevSample, predOriginalSample };
  }
}

/** The type of every DdimConfig field (trainedBetas: null or a list). */
const PARSED_FIELDS: Record<keyof DdimConfig, 'number' | 'string' | 'boolean' | 'object'> = {
  numTrainTimesteps: 'number', betaStart: 'number', betaEnd: 'number', betaSchedule: 'string', trainedBetas: 'object', clipSample: 'boolean',
  clipSampleRange: 'number', setAlphaToOne: 'boolean', stepsOffset: 'number', predictionType: 'string', timestepSpacing: 'string',
  thresholding: 'boolean', rescaleBetasZeroSnr: 'boolean',
};

/**
 * A parsed config has every DdimConfig field; anything else is read as a scheduler_config.json, so a file that carries a
 * few camelCase keys is still validated (unknown keys there, ignored as diffusers does) instead of used half-empty.
 */
function isParsed(c: DdimConfigJson | DdimConfig): c is DdimConfig {
  return Object.entries(PARSED_FIELDS).every(([k, type]) => typeof (c as Record<string, unknown>)[k] === type);
}
