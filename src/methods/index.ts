/** Building a method from its name and options (CLI flags, library callers). */
import { InputError } from '../errors.js';
import { kvConcat, kvReplace, styleAligned } from './baselines.js';
import { inDetailIP } from './indetail-ip.js';
import { METHOD_NAMES, type GuidanceMode, type MethodName, type ReferenceMethod } from './method.js';

export interface MethodOptions {
  guidanceMode?: GuidanceMode;
  stratifiedSteps?: number;
  lambdaP?: number;
  lambdaG?: number;
  tAlign?: number;
  /** kv-concat (RIVAL): AdaIN of the guided noise to the reference's above this timestep. */
  tEarly?: number;
  /** kv-concat (RIVAL): draw the latent permutation with torch.randperm after torch.manual_seed(seed). */
  permutationSeed?: number | bigint;
  startStep?: number;
  startLayer?: number;
  /** kv-replace: the pre-parity variant (noise start, reference pinned to the unguided inversion chain) instead of official MasaCtrl. */
  fromNoise?: boolean;
  scoreShift?: number;
  /** style-aligned: shared_score_scale (reference keys scaled). */
  scoreScale?: number;
  /** style-aligned: make_inversion_callback's offset (the reference row's start in the inversion chain). */
  inversionOffset?: number;
  controlnet?: boolean;
}

export function createMethod(name: string, steps: number, o: MethodOptions = {}): ReferenceMethod {
  switch (name as MethodName) {
    case 'indetail-ip': return inDetailIP(steps, o);
    case 'kv-concat': return kvConcat(o);
    case 'kv-replace': return kvReplace(steps, o);
    case 'style-aligned': return styleAligned(steps, o);
    default: throw new InputError(`unknown method ${JSON.stringify(name)} (expected one of ${METHOD_NAMES.join(', ')})`);
  }
}

export * from './method.js';
export { inDetailIP } from './indetail-ip.js';
export { kvConcat, kvReplace, styleAligned } from './baselines.js';
