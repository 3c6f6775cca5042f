/**
 * Scheduler selection: by name (the CLI's --scheduler) or, by default, the class the model's
 * scheduler_config.json names (`_class_name`), as diffusers loads it. Either way the config is applied
 * with diffusers' `from_config` semantics: every key the class knows is taken (so DDPM inherits
 * clip_sample false from a DDIM config), and a name adds its own settings on top (kwargs).
 */
import { FileFormatError, InputError } from '../errors.js';
import type { Json } from '../io/config.js';
import { DDIMInverseScheduler, DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral.js';
import { EulerDiscreteScheduler } from './euler.js';
import { HeunDiscreteScheduler } from './heun.js';
import { LCMScheduler } from './lcm.js';
import { LMSDiscreteScheduler } from './lms.js';
import { PNDMScheduler } from './pndm.js';
import type { Sampler } from './sampler.js';
import { SchedulerConfigReader, TIMESTEP_SPACINGS } from './scheduler-config.js';
import { UniPCMultistepScheduler } from './unipc.js';

export const SCHEDULERS = ['ddim', 'ddpm', 'euler', 'euler-a', 'dpm++2m', 'dpm++2m-karras', 'dpm++2m-sde', 'unipc', 'pndm', 'lms', 'heun', 'lcm'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

type Ctor = (raw: Record<string, unknown>, source: string) => Sampler;
const CLASSES: Record<string, Ctor> = {
  DDIMScheduler: (raw, source) => new DDIMScheduler(raw, { source }),
  DDPMScheduler: (raw, source) => new DDPMScheduler(raw, { source }),
  EulerDiscreteScheduler: (raw, source) => new EulerDiscreteScheduler(raw, { source }),
  EulerAncestralDiscreteScheduler: (raw, source) => new EulerAncestralDiscreteScheduler(raw, { source }),
  DPMSolverMultistepScheduler: (raw, source) => new DPMSolverMultistepScheduler(raw, { source }),
  UniPCMultistepScheduler: (raw, source) => new UniPCMultistepScheduler(raw, { source }),
  PNDMScheduler: (raw, source) => new PNDMScheduler(raw, { source }),
  LMSDiscreteScheduler: (raw, source) => new LMSDiscreteScheduler(raw, { source }),
  HeunDiscreteScheduler: (raw, source) => new HeunDiscreteScheduler(raw, { source }),
  LCMScheduler: (raw, source) => new LCMScheduler(raw, { source }),
};

/** Each name: the diffusers class and the kwargs it passes to from_config. */
export const SCHEDULER_CLASSES: Record<SchedulerName, { className: string; kwargs: Record<string, unknown>; description: string }> = {
  ddim: { className: 'DDIMScheduler', kwargs: {}, description: 'DDIM (eta via --eta)' },
  ddpm: { className: 'DDPMScheduler', kwargs: {}, description: 'DDPM ancestral sampling' },
  euler: { className: 'EulerDiscreteScheduler', kwargs: {}, description: 'Euler' },
  'euler-a': { className: 'EulerAncestralDiscreteScheduler', kwargs: {}, description: 'Euler ancestral' },
  'dpm++2m': { className: 'DPMSolverMultistepScheduler', kwargs: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: false }, description: 'DPM++ 2M' },
  'dpm++2m-karras': { className: 'DPMSolverMultistepScheduler', kwargs: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: true }, description: 'DPM++ 2M with Karras sigmas' },
  'dpm++2m-sde': { className: 'DPMSolverMultistepScheduler', kwargs: { algorithm_type: 'sde-dpmsolver++', solver_order: 2, use_karras_sigmas: false }, description: 'DPM++ 2M SDE' },
  unipc: { className: 'UniPCMultistepScheduler', kwargs: {}, description: 'UniPC (bh2)' },
  pndm: { className: 'PNDMScheduler', kwargs: { skip_prk_steps: true }, description: 'PNDM / PLMS' },
  lms: { className: 'LMSDiscreteScheduler', kwargs: {}, description: 'LMS (order 4)' },
  heun: { className: 'HeunDiscreteScheduler', kwargs: {}, description: 'Heun (2 UNet calls per step)' },
  lcm: { className: 'LCMScheduler', kwargs: {}, description: 'LCM (few-step, for LCM / LCM-LoRA models)' },
};

/** The --scheduler name of a diffusers class (undefined when not supported). */
export function schedulerNameForClass(className: string): SchedulerName | undefined {
  return SCHEDULERS.find((n) => SCHEDULER_CLASSES[n].className === className);
}

export function checkSchedulerName(name: string, flag = '--scheduler'): SchedulerName {
  if (!(SCHEDULERS as readonly string[]).includes(name)) throw new InputError(`unknown scheduler ${JSON.stringify(name)} for ${flag} (expected one of: ${SCHEDULERS.join(', ')})`);
  return name as SchedulerName;
}

export interface CreateSchedulerOptions {
  /** Overrides the config's timestep_spacing (the CLI's --timestep-spacing). */
  timestepSpacing?: string;
}

/**
 * A sampler for `name` (or, when undefined, the config's `_class_name`) built from the checkpoint's
 * scheduler config as diffusers' `from_config`.
 */
export function createScheduler(name: string | undefined, config: { file: string; raw: Record<string, Json> }, opts: CreateSchedulerOptions = {}): Sampler {
  let className: string;
  let kwargs: Record<string, unknown> = {};
  if (name === undefined) {
    const cls = config.raw._class_name;
    if (typeof cls !== 'string' || !Object.hasOwn(CLASSES, cls)) {
      throw new FileFormatError(config.file, `expected a supported scheduler class (${Object.keys(CLASSES).join(', ')}) or choose one with --scheduler, got ${JSON.stringify(cls ?? null)}`, '_class_name');
    }
    className = cls;
  } else {
    const n = checkSchedulerName(name);
    ({ className, kwargs } = SCHEDULER_CLASSES[n]);
  }
  if (opts.timestepSpacing !== undefined && !(TIMESTEP_SPACINGS as readonly string[]).includes(opts.timestepSpacing)) {
    throw new InputError(`--timestep-spacing must be one of ${TIMESTEP_SPACINGS.join(', ')}, got ${JSON.stringify(opts.timestepSpacing)}`);
  }
  // from_config: keys that were defaults when saved are dropped; kwargs (and the spacing flag) win
  const raw: Record<string, unknown> = { ...new SchedulerConfigReader(config.file, config.raw).raw, ...kwargs };
  if (opts.timestepSpacing !== undefined) raw.timestep_spacing = opts.timestepSpacing;
  return CLASSES[className]!(raw, config.file);
}

export function createInverseScheduler(config: { file: string; raw: Record<string, Json> }): DDIMInverseScheduler {
  return new DDIMInverseScheduler(new SchedulerConfigReader(config.file, config.raw).raw, { source: config.file });
}

export type { Sampler, SchedulerStepOptions, SchedulerStepResult } from './sampler.js';
export {
  DDIMInverseScheduler, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
  HeunDiscreteScheduler, LCMScheduler, LMSDiscreteScheduler, PNDMScheduler, UniPCMultistepScheduler,
};
