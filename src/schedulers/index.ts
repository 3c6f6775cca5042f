/** Scheduler selection by name (the CLI's --scheduler). */
import { InputError } from '../errors.js';
import type { Json } from '../io/config.js';
import { DDIMInverseScheduler, DDIMScheduler, type DdimStepOptions, type DdimStepResult } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';

export const SCHEDULERS = ['ddim', 'ddpm'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/** What the sampling loops need of a scheduler. */
export interface Sampler {
  readonly timesteps: number[];
  setTimesteps(n: number): void;
  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts?: DdimStepOptions): DdimStepResult;
}

/** A sampler built from the checkpoint's scheduler config (as diffusers' `from_config`). */
export function createScheduler(name: string, config: { file: string; raw: Record<string, Json> }): Sampler {
  switch (name as SchedulerName) {
    case 'ddim': return new DDIMScheduler(config.raw, { source: config.file });
    case 'ddpm': return new DDPMScheduler(config.raw, { source: config.file });
    default: throw new InputError(`unknown scheduler ${JSON.stringify(name)} (expected one of: ${SCHEDULERS.join(', ')})`);
  }
}

export function createInverseScheduler(config: { file: string; raw: Record<string, Json> }): DDIMInverseScheduler {
  return new DDIMInverseScheduler(config.raw, { source: config.file });
}

export { DDIMInverseScheduler, DDIMScheduler, DDPMScheduler };
