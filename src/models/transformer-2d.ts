/**
 * diffusers Transformer2DModel (continuous input) and BasicTransformerBlock:
 * x + proj_out(blocks(proj_in(GroupNorm(x)))), each block = self-attention (attn1), cross-attention
 * on the text (attn2) and a GEGLU feed-forward, each pre-normed with LayerNorm and residual.
 */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, gelu, layerNorm, linear } from '../graph/nn.js';
import { hookedGroupNorm } from './group-norm-hook.js';
import { attention } from './attention.js';
import type { BatchRows } from './batch-rows.js';
import type { UNetHooks } from './hooks.js';

export interface Transformer2DSpec {
  readonly path: string;
  readonly channels: number;
  readonly heads: number;
  readonly dimHead: number;
  readonly crossAttentionDim: number;
  readonly layers: number;
  readonly groups: number;
  readonly useLinearProjection: boolean;
}

/** FeedForward with GEGLU: net.0.proj -> (hidden, gate) -> hidden * gelu(gate) -> net.2 */
function feedForward(x: Value, vb: WeightsView, dim: number): Value {
  const inner = dim * 4;
  const [hidden, gate] = op.chunk(linear(x, vb.pp('net.0.proj'), dim, inner * 2), 2, -1) as [Value, Value];
  return linear(op.mul(hidden, gelu(gate)), vb.pp('net.2'), inner, dim);
}

/** `rows`: rows may be dropped at attn1 (BatchRows); x and context are then taken on the kept rows after it. */
function basicTransformerBlock(x: Value, context: Value, vb: WeightsView, s: Transformer2DSpec, path: string, hooks?: UNetHooks, rows?: BatchRows): Value {
  const dim = s.heads * s.dimHead;
  const common = { queryDim: dim, heads: s.heads, dimHead: s.dimHead, qkvBias: false } as const;
  const n1 = layerNorm(x, vb.pp('norm1'), dim, 1e-5);
  const a1 = attention(n1, n1, vb.pp('attn1'), { ...common, path: `${path}.attn1`, kind: 'attn1', contextDim: dim }, hooks, rows);
  let h = op.add(rows ? rows.of(x) : x, a1);
  h = op.add(h, attention(layerNorm(h, vb.pp('norm2'), dim, 1e-5), rows ? rows.of(context) : context, vb.pp('attn2'), { ...common, path: `${path}.attn2`, kind: 'attn2', contextDim: s.crossAttentionDim }, hooks));
  return op.add(h, feedForward(layerNorm(h, vb.pp('norm3'), dim, 1e-5), vb.pp('ff'), dim));
}

export function transformer2D(x: Value, context: Value, vb: WeightsView, s: Transformer2DSpec, hooks?: UNetHooks, rows?: BatchRows): Value {
  const [b, c, hh, ww] = x.shape as [number, number, number, number];
  const inner = s.heads * s.dimHead;
  const normed = hookedGroupNorm(x, vb.pp('norm'), s.groups, 1e-6, `${s.path}.norm`, hooks);
  const toTokens = (v: Value): Value => op.reshape(op.transpose(v, [0, 2, 3, 1]), [b, hh * ww, v.dim(1)]);
  let tokens = s.useLinearProjection
    ? linear(toTokens(normed), vb.pp('proj_in'), c, inner)
    : toTokens(conv2d(normed, vb.pp('proj_in'), c, inner, 1));
  for (let i = 0; i < s.layers; i++) {
    const path = `${s.path}.transformer_blocks.${i}`;
    tokens = x.graph.scope(path, () => basicTransformerBlock(tokens, context, vb.pp('transformer_blocks').pp(i), s, path, hooks, rows));
  }
  // Rows dropped inside the blocks come back (zeros) for proj_out and the residual, so this part is the whole
  // batch's graph (ONNX Runtime fuses the residual add into a convolution's accumulation only where both are
  // whole: a gathered residual would round the kept rows differently); the output is then taken on the kept rows.
  if (rows && tokens.dim(0) !== b) tokens = rows.restore(tokens);
  const toImage = (v: Value): Value => op.transpose(op.reshape(v, [b, hh, ww, v.dim(2)]), [0, 3, 1, 2]);
  const out = s.useLinearProjection
    ? toImage(linear(tokens, vb.pp('proj_out'), inner, c))
    : conv2d(toImage(tokens), vb.pp('proj_out'), inner, c, 1);
  const y = op.add(out, x);
  return rows ? rows.of(y) : y;
}
