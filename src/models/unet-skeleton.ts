/**
 * The U-Net skeleton shared by UNet2DConditionModel, UNet2DModel and the ControlNet encoder: down blocks
 * whose every layer output is a skip connection (conv_in's output first), strided downsampling between
 * levels; up blocks that concatenate skips from the end, upsampling to the next skip's size. What a
 * layer is (resnet, + transformer or pixel attention) comes from the caller.
 */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { BatchRows } from './batch-rows.js';
import type { UNetHooks } from './hooks.js';
import { downsample2D, upsample2D } from './resnet.js';

export interface SkeletonSpec {
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly downsamplePadding: number;
  /** Layer j of down block i on h (its input), producing outC channels. */
  downLayer(i: number, j: number, h: Value, outC: number, bv: WeightsView, path: string): Value;
  /** Layer j of up block i on [h; skip] (already concatenated). */
  upLayer(i: number, j: number, h: Value, outC: number, bv: WeightsView, path: string): Value;
}

export function downBlocks(x: Value, vb: WeightsView, s: SkeletonSpec, hooks?: UNetHooks): { h: Value; skips: Value[] } {
  const skips: Value[] = [x];
  const n = s.blockOutChannels.length;
  let h = x;
  for (let i = 0; i < n; i++) {
    const path = `down_blocks.${i}`;
    const bv = vb.pp('down_blocks').pp(i);
    const outC = s.blockOutChannels[i]!;
    h = x.graph.scope(path, () => {
      let y = h;
      for (let j = 0; j < s.layersPerBlock; j++) {
        y = s.downLayer(i, j, y, outC, bv, path);
        skips.push(y);
      }
      if (i < n - 1) {
        y = downsample2D(y, bv.pp('downsamplers.0'), outC, s.downsamplePadding);
        skips.push(y);
      }
      return y;
    });
    hooks?.tap?.(`${path}.output`, h);
  }
  return { h, skips };
}

/**
 * Skips pass through hooks.skip (ControlNet residuals, h-space methods) before the up blocks read them.
 * `rows`: once rows are dropped (BatchRows), each skip is taken on the kept rows.
 */
export function upBlocks(x: Value, skips: readonly Value[], vb: WeightsView, s: SkeletonSpec, hooks?: UNetHooks, rows?: BatchRows): Value {
  const consumed = skips.map((v, k) => {
    hooks?.tap?.(`down_block_res_samples.${k}`, v);
    return hooks?.skip ? hooks.skip(k, v) : v;
  });
  const n = s.blockOutChannels.length;
  const reversed = [...s.blockOutChannels].reverse();
  let h = x;
  for (let i = 0; i < n; i++) {
    const path = `up_blocks.${i}`;
    const bv = vb.pp('up_blocks').pp(i);
    const outC = reversed[i]!;
    h = x.graph.scope(path, () => {
      let y = h;
      for (let j = 0; j <= s.layersPerBlock; j++) {
        const res = consumed.pop();
        if (!res) throw new Error('UNet: skip connections exhausted');
        y = s.upLayer(i, j, op.concat([y, rows ? rows.of(res) : res], 1), outC, bv, path);
      }
      if (i < n - 1) {
        const next = consumed[consumed.length - 1]!;
        y = upsample2D(y, bv.pp('upsamplers.0'), outC, [next.dim(2), next.dim(3)]);
      }
      return y;
    });
    hooks?.tap?.(`${path}.output`, h);
  }
  return h;
}
