/**
 * diffusers `Attention` with the plain AttnProcessor: to_q / to_k / to_v, softmax(Q K^T * d^-1/2) V per
 * head, to_out.0. The core goes through UNetHooks.attention so methods can rewrite it.
 */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import { attentionCore, fusedAttention, groupNorm, linear, mergeHeads, splitHeads } from '../graph/nn.js';
import * as op from '../graph/ops.js';
import type { BatchRows } from './batch-rows.js';
import type { AttentionCall, UNetHooks } from './hooks.js';

export interface AttentionSpec {
  readonly path: string;
  readonly kind: AttentionCall['kind'];
  readonly queryDim: number;
  /** Channels of the context (encoder_hidden_states for cross-attention). */
  readonly contextDim: number;
  readonly heads: number;
  readonly dimHead: number;
  readonly qkvBias: boolean;
}

export function plainAttention(q: Value, k: Value, v: Value, heads: number, scale: number): Value {
  return fusedAttention(q, k, v, heads, scale);
}

/** The same attention with explicit matmuls and softmax (reference implementation, tests). */
export function explicitAttention(q: Value, k: Value, v: Value, heads: number, scale: number): Value {
  return mergeHeads(attentionCore(splitHeads(q, heads), splitHeads(k, heads), splitHeads(v, heads), scale));
}

/** `rows` (up path of a UNet whose hooks drop rows): a self-attention layer may be where rows are dropped (UNetHooks.keepRows). */
export function attention(x: Value, context: Value, vb: WeightsView, spec: AttentionSpec, hooks?: UNetHooks, rows?: BatchRows): Value {
  const inner = spec.heads * spec.dimHead;
  const q = linear(x, vb.pp('to_q'), spec.queryDim, inner, spec.qkvBias);
  const k = linear(context, vb.pp('to_k'), spec.contextDim, inner, spec.qkvBias);
  const v = linear(context, vb.pp('to_v'), spec.contextDim, inner, spec.qkvBias);
  if (spec.kind !== 'spatial') hooks?.tap?.(`${spec.path}.input`, x);
  hooks?.tap?.(`${spec.path}.to_q`, q);
  hooks?.tap?.(`${spec.path}.to_k`, k);
  hooks?.tap?.(`${spec.path}.to_v`, v);
  const scale = spec.dimHead ** -0.5;
  const plain = (qq: Value, kk: Value, vv: Value): Value => plainAttention(qq, kk, vv, spec.heads, scale);
  const keep = spec.kind === 'attn1' ? rows?.atSelfAttention(spec.path) : undefined;
  const core = keep
    ? hooks?.attention?.({ path: spec.path, kind: spec.kind, q, k, v, heads: spec.heads, scale, plain, outputRows: keep }) ?? plain(op.gather(q, 0, keep), op.gather(k, 0, keep), op.gather(v, 0, keep))
    : hooks?.attention?.({ path: spec.path, kind: spec.kind, q, k, v, heads: spec.heads, scale, plain }) ?? plain(q, k, v);
  if (keep && core.dim(0) !== keep.length) throw new Error(`${spec.path}: the attention hook returned ${core.dim(0)} rows for ${keep.length} kept rows`);
  const out = linear(core, vb.pp('to_out.0'), inner, spec.queryDim);
  if (spec.kind !== 'spatial') hooks?.tap?.(`${spec.path}.output`, out);
  return out;
}

/**
 * Self-attention over the pixels of an NCHW map, as diffusers' `Attention` with group_norm and
 * residual_connection (VAE mid block, UNet2DModel's Attn blocks): GroupNorm -> tokens -> attention ->
 * back to NCHW -> + input.
 */
export function spatialSelfAttention(h: Value, vb: WeightsView, o: { path: string; groups: number; eps: number; heads: number }, hooks?: UNetHooks): Value {
  const [b, c, hh, ww] = h.shape as [number, number, number, number];
  hooks?.tap?.(`${o.path}.input`, h);
  const tokens = op.transpose(op.reshape(groupNorm(h, vb.pp('group_norm'), o.groups, o.eps), [b, c, hh * ww]), [0, 2, 1]);
  const out = attention(tokens, tokens, vb, { path: o.path, kind: 'spatial', queryDim: c, contextDim: c, heads: o.heads, dimHead: c / o.heads, qkvBias: true }, hooks);
  const y = op.add(op.reshape(op.transpose(out, [0, 2, 1]), [b, c, hh, ww]), h);
  hooks?.tap?.(`${o.path}.output`, y);
  return y;
}
