/**
 * Editing in h-space, the UNet's bottleneck (the mid-block output). Each UNet call runs the rows twice:
 * [x (plain h), x (edited h')], so eps(h) and eps(h') come from one call and the edited rows keep their
 * own skip connections. Per-row inputs switch the edit on or off, so every step uses one graph.
 *  - inject (InjectFusion): h' = slerp(gamma, h, h_c |h| / |h_c|), optionally restricted by a mask;
 *  - delta (Asyrp): h' = h + c * DeltaBlock(h, temb).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { Feed } from '../graph/session.js';
import type { WeightsView } from '../io/weights.js';
import type { UNetHooks } from '../models/hooks.js';
import type { UNetVariant } from '../components/unet.js';
import type { Tensor } from '../tensor.js';
import { deltaBlock, type DeltaBlockConfig } from './delta-block.js';

export type HSpaceEdit =
  | { kind: 'inject'; masked: boolean }
  | { kind: 'delta'; weights: WeightsView; config: DeltaBlockConfig; id: string };

/** Per-row sum over all but the first axis, kept as [B, 1, 1, 1]. */
const rowSum = (x: Value): Value => op.reduceSum(x, [1, 2, 3]);

/**
 * Spherical interpolation between h and the content h_c rescaled to |h| (per row). gamma = 0 gives h
 * exactly; nearly parallel vectors fall back to linear interpolation (the slerp formula divides by sin theta).
 */
export function normalizedSlerp(h: Value, content: Value, gamma: Value): Value {
  const n0 = op.sqrt(rowSum(op.mul(h, h)));
  const n1 = op.sqrt(rowSum(op.mul(content, content)));
  const hc = op.mul(content, op.div(n0, n1));
  const dot = op.clip(op.div(rowSum(op.mul(h, content)), op.mul(n0, n1)), -1, 1);
  const theta = op.acos(dot);
  const sinTheta = op.sin(theta);
  const s0 = op.div(op.sin(op.mul(op.rsub(1, gamma), theta)), sinTheta);
  const s1 = op.div(op.sin(op.mul(gamma, theta)), sinTheta);
  const slerp = op.add(op.mul(h, s0), op.mul(hc, s1));
  const lerp = op.add(h, op.mul(op.sub(hc, h), gamma));
  return op.where(op.greater(op.abs(dot), 0.9995), lerp, slerp);
}

export const HSPACE_INPUTS = { on: 'hspace_on', gamma: 'hspace_gamma', content: 'hspace_content', mask: 'hspace_mask', strength: 'hspace_strength' } as const;

export function hSpaceVariant(edit: HSpaceEdit, hShape: readonly number[]): UNetVariant {
  return {
    outputs: ['mid_block', 'mid_block.edited'],
    key: edit.kind === 'inject' ? `hspace-inject${edit.masked ? '-mask' : ''}` : `hspace-delta:${edit.id}`,
    hooks(g: Graph, batch: number): UNetHooks {
      const on = g.input(HSPACE_INPUTS.on, [batch, 1, 1, 1]);
      const active = op.greater(on, 0.5);
      if (edit.kind === 'inject') {
        const gamma = g.input(HSPACE_INPUTS.gamma, [batch, 1, 1, 1]);
        const content = g.input(HSPACE_INPUTS.content, [batch, ...hShape.slice(1)]);
        const mask = edit.masked ? g.input(HSPACE_INPUTS.mask, [1, 1, hShape[2]!, hShape[3]!]) : undefined;
        return {
          midBlock: (h) => {
            let edited = normalizedSlerp(h, content, gamma);
            if (mask) edited = op.add(op.mul(edited, mask), op.mul(h, op.rsub(1, mask)));
            // Rows that are off keep h bit for bit (their content may be zeros: the slerp is NaN there).
            return op.where(active, edited, h);
          },
        };
      }
      const strength = g.input(HSPACE_INPUTS.strength, [batch, 1, 1, 1]);
      return {
        midBlock: (h, temb) => op.where(active, op.add(h, op.mul(deltaBlock(h, temb, edit.weights, edit.config), strength)), h),
      };
    },
  };
}

/** Feeds for one call of a [plain x B, edited x B] batch. */
export function hSpaceFeeds(edit: HSpaceEdit, b: number, o: { on: boolean; gamma?: number; strength?: number; content?: Tensor; mask?: Tensor }): Record<string, Feed> {
  const rows = 2 * b;
  const perRow = (v: number): Tensor => ({ shape: [rows, 1, 1, 1], data: Float32Array.from({ length: rows }, (_, r) => (r >= b ? v : 0)) });
  const feeds: Record<string, Feed> = { [HSPACE_INPUTS.on]: perRow(o.on ? 1 : 0) };
  if (edit.kind === 'inject') {
    feeds[HSPACE_INPUTS.gamma] = perRow(o.gamma ?? 0);
    const c = o.content!;
    const data = new Float32Array(rows * (c.data.length / b));
    data.set(c.data, c.data.length); // plain rows: zeros (never read)
    feeds[HSPACE_INPUTS.content] = { shape: [rows, ...c.shape.slice(1)], data };
    if (edit.masked) feeds[HSPACE_INPUTS.mask] = o.mask!;
  } else {
    feeds[HSPACE_INPUTS.strength] = perRow(o.strength ?? 0);
  }
  return feeds;
}
