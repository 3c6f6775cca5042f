/** Scheduler selection by name (the CLI's --scheduler). */
import { InputError } from '../errors.js';
import type { Json } from '../io/config.js';
import { DDIMInverseScheduler, DDIMScheduler } from './ddim.js';

export const SCHEDULERS = ['ddim'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

export function createScheduler(name: string, config: { file: string; raw: Record<string, Json> }): DDIMScheduler {
  if (!(SCHEDULERS as readonly string[]).includes(name)) throw new InputError(`unknown scheduler ${JSON.stringify(name)} (expected one of: ${SCHEDULERS.join(', ')})`);
  return new DDIMScheduler(config.raw, { source: config.file });
}

export function createInverseScheduler(config: { file: string; raw: Record<string, Json> }): DDIMInverseScheduler {
  return new DDIMInverseScheduler(config.raw, { source: config.file });
}

export { DDIMInverseScheduler, DDIMScheduler };
