/**
 * Dropping batch rows part-way through a UNet's up path (UNetHooks.keepRows): a reference row whose noise
 * prediction nobody reads is needed only until the last layer that reads its keys and values; from there on
 * the model computes the other rows only. Values made before the drop (skips, time embedding, text, a block's
 * residual input) are gathered to the kept rows where they are used; the output gets zeros in the dropped rows.
 * Each row of a UNet is computed independently, so the kept rows' results are those of the whole batch.
 */
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { UNetHooks } from './hooks.js';

export class BatchRows {
  private kept: readonly number[] | undefined;
  private readonly gathered = new Map<string, Value>();

  /** `selfAttention`: every attn1 path of the UNet in build order (selfAttentionPaths). */
  constructor(readonly batch: number, private readonly hooks: UNetHooks, private readonly selfAttention: readonly string[]) {}

  /** The kept rows once rows were dropped, else undefined. */
  get rows(): readonly number[] | undefined { return this.kept; }

  /**
   * Before the self-attention layer `path` (up path, after its Q/K/V projections): the rows that layer's
   * output and every later layer compute, when the hooks drop rows here (once per graph), else undefined.
   */
  atSelfAttention(path: string): readonly number[] | undefined {
    if (this.kept || !this.hooks.keepRows) return undefined;
    const i = this.selfAttention.indexOf(path);
    if (i < 0) throw new Error(`UNet: ${path} is not among this UNet's self-attention layers`);
    const keep = this.hooks.keepRows(path, this.selfAttention.slice(i + 1));
    if (!keep || keep.length === this.batch) return undefined;
    if (keep.length === 0 || keep.some((r, j) => !Number.isInteger(r) || r < 0 || r >= this.batch || (j > 0 && r <= keep[j - 1]!))) {
      throw new Error(`UNet: keepRows must give increasing row indices in [0, ${this.batch}), got [${keep.join(', ')}]`);
    }
    this.kept = [...keep];
    return this.kept;
  }

  /** `v` on the kept rows: a whole-batch value made before the drop is gathered; values made after it pass through. */
  of(v: Value): Value {
    if (!this.kept || v.dim(0) !== this.batch) return v;
    let g = this.gathered.get(v.name);
    if (!g) {
      g = op.gather(v, 0, this.kept);
      this.gathered.set(v.name, g);
    }
    return g;
  }

  /** The network's output on the kept rows back to the whole batch, zeros in the dropped rows. */
  restore(v: Value): Value {
    const kept = this.kept;
    if (!kept || v.dim(0) === this.batch) return v;
    const dropped = Array.from({ length: this.batch }, (_, r) => r).filter((r) => !kept.includes(r));
    const g = v.graph;
    const shape = [dropped.length, ...v.shape.slice(1)];
    // a scalar 0 expanded (not a constant as large as the rows)
    const zeros = g.node('Expand', [op.constFloat(g, [], new Float32Array(1), 'zero'), g.constant({ dtype: 'int64', shape: [shape.length], data: BigInt64Array.from(shape.map(BigInt)) }, 'shape')], [{ shape, dtype: v.dtype }])[0]!;
    const order = [...kept, ...dropped];
    return op.gather(op.concat([v, zeros], 0), 0, order.map((_, r) => order.indexOf(r)));
  }
}
