/**
 * The image projections of IP-Adapter, as diffusers v0.30.3 builds them:
 *   ImageProjection (base): tokens = LayerNorm(Linear(image_embeds).reshape(B, N, C))
 *   IPAdapterPlusImageProjection (plus, the Resampler): learned queries `latents` attend, in `depth` blocks,
 *     to [ln0(proj_in(x)); ln1(latents)], each block: latents = attn(ln1(latents), kv) + latents;
 *     latents = ff(latents) + latents (LayerNorm -> Linear -> exact GELU -> Linear, no biases);
 *     then norm_out(proj_out(latents)).
 */
import { Graph, type Value } from '../../graph/ir.js';
import { fusedAttention, gelu, layerNorm, linear, param } from '../../graph/nn.js';
import * as op from '../../graph/ops.js';
import { compile } from '../../graph/session.js';
import type { WeightsView } from '../../io/weights.js';
import type { Tensor } from '../../tensor.js';
import type { ImageProjectionSpec, IPAdapter, PlusImageProjectionSpec } from './ip-adapter-file.js';

const LN_EPS = 1e-5;

/** [B, D] image_embeds -> [B, N, C] tokens. */
export function imageProjection(x: Value, vb: WeightsView, s: ImageProjectionSpec): Value {
  const b = x.dim(0);
  const y = linear(x, vb.pp('image_embeds'), s.imageEmbedDim, s.numTokens * s.crossAttentionDim);
  return layerNorm(op.reshape(y, [b, s.numTokens, s.crossAttentionDim]), vb.pp('norm'), s.crossAttentionDim, LN_EPS);
}

/** [B, L, D] hidden states -> [B, N, C] tokens. */
export function ipAdapterPlusImageProjection(x: Value, vb: WeightsView, s: PlusImageProjectionSpec, tap?: (name: string, v: Value) => void): Value {
  const b = x.dim(0), h = s.hiddenDim, inner = s.heads * s.dimHead;
  const learned = param(x.graph, vb, 'latents', [1, s.numTokens, h]);
  let latents = b === 1 ? learned : op.concat(Array<Value>(b).fill(learned), 0);
  const states = linear(x, vb.pp('proj_in'), s.imageEmbedDim, h);
  tap?.('proj_in', states);
  for (let i = 0; i < s.depth; i++) {
    const l = vb.pp('layers').pp(i);
    const residual = latents;
    const normedStates = layerNorm(states, l.pp('ln0'), h, LN_EPS);
    const normedLatents = layerNorm(latents, l.pp('ln1'), h, LN_EPS);
    const kv = op.concat([normedStates, normedLatents], 1);
    const a = l.pp('attn');
    const q = linear(normedLatents, a.pp('to_q'), h, inner, false);
    const k = linear(kv, a.pp('to_k'), h, inner, false);
    const v = linear(kv, a.pp('to_v'), h, inner, false);
    latents = op.add(linear(fusedAttention(q, k, v, s.heads, s.dimHead ** -0.5), a.pp('to_out.0'), inner, h, false), residual);
    const ff = l.pp('ff');
    const hidden = gelu(linear(layerNorm(latents, ff.pp('0'), h, LN_EPS), ff.pp('1.net.0.proj'), h, s.ffInner, false));
    latents = op.add(linear(hidden, ff.pp('1.net.2'), s.ffInner, h, false), latents);
    tap?.(`layers.${i}.output`, latents);
  }
  const out = linear(latents, vb.pp('proj_out'), h, s.crossAttentionDim);
  tap?.('proj_out', out);
  return layerNorm(out, vb.pp('norm_out'), s.crossAttentionDim, LN_EPS);
}

/** The adapter's projection on a batch of image-encoder outputs ([B, D] base, [B, L, D] plus): [B, N, C] tokens. */
export async function projectImageEmbeds(adapter: IPAdapter, embeds: Tensor): Promise<Tensor> {
  const session = await compile(`${adapter.id}:image_proj:${embeds.shape.join('x')}`, () => {
    const g = new Graph('ip_adapter_image_proj');
    const x = g.input('image_embeds', embeds.shape);
    const p = adapter.projection;
    g.output('image_tokens', p.kind === 'base' ? imageProjection(x, adapter.imageProj, p) : ipAdapterPlusImageProjection(x, adapter.imageProj, p));
    return g;
  });
  return (await session.run({ image_embeds: embeds })).image_tokens!;
}
