/** A UNet GroupNorm that a hook may replace (StyleAligned shares its statistics with the reference row). */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import { groupNorm } from '../graph/nn.js';
import type { UNetHooks } from './hooks.js';

export function hookedGroupNorm(x: Value, vb: WeightsView, groups: number, eps: number, path: string, hooks?: UNetHooks): Value {
  const norm = (v: Value): Value => groupNorm(v, vb, groups, eps);
  return hooks?.groupNorm?.({ path, x, norm }) ?? norm(x);
}
