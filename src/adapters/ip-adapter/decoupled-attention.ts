/**
 * IP-Adapter's decoupled cross-attention as a hook on every attn2 (diffusers IPAdapterAttnProcessor2_0):
 *   out = Attn(q, k_txt, v_txt) + sum_j scale_j * Attn(q, to_k_ip_j(tokens_j), to_v_ip_j(tokens_j))
 * with the layer's own query and heads, a separate softmax per adapter, before to_out. The image tokens
 * and the per-row scales are graph inputs: one compiled graph serves every image and every scale, and a
 * row with scale 0 (a reference row, an adapter switched off) computes its text attention unchanged.
 */
import { FileFormatError } from '../../errors.js';
import type { Graph, Value } from '../../graph/ir.js';
import { linear } from '../../graph/nn.js';
import * as op from '../../graph/ops.js';
import type { Feed } from '../../graph/session.js';
import type { AttentionCall, UNetHooks } from '../../models/hooks.js';
import type { UNet, UNetVariant } from '../../components/unet.js';
import type { Tensor } from '../../tensor.js';
import type { IPAdapter } from './ip-adapter-file.js';

const tokensName = (j: number): string => `ip_adapter_${j}_tokens`;
const scaleName = (j: number): string => `ip_adapter_${j}_scale`;

const GROUP_ORDER: Record<string, number> = { down_blocks: 0, up_blocks: 1, mid_block: 2 };

/**
 * The attn2 layers of a UNet in the order of diffusers' `unet.attn_processors` (module registration:
 * down_blocks, up_blocks, then mid_block; inside each, by index): the k-th is `ip_adapter.<2k+1>`.
 */
export function crossAttentionOrder(unet: UNet): string[] {
  const paths: string[] = [];
  for (const key of unet.weights.source.keys()) {
    const m = /^(.*\.attn2)\.to_k\.weight$/.exec(key);
    if (m) paths.push(m[1]!);
  }
  const sortKey = (p: string): number[] => {
    const parts = p.split('.');
    return [GROUP_ORDER[parts[0]!] ?? 3, ...parts.slice(1).filter((s) => /^\d+$/.test(s)).map(Number)];
  };
  return paths.sort((a, b) => {
    const x = sortKey(a), y = sortKey(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = (x[i] ?? -1) - (y[i] ?? -1);
      if (d !== 0) return d;
    }
    return 0;
  });
}

/** Check that an adapter was made for this UNet: token width = cross_attention_dim, one layer per attn2. */
export function checkAdapterFits(adapter: IPAdapter, unet: UNet, order: readonly string[]): void {
  const cross = unet.config.crossAttentionDim;
  const width = adapter.projection.crossAttentionDim;
  if (width !== cross) {
    throw new FileFormatError(adapter.file, `IP-Adapter for another base model: it makes ${width}-wide image tokens but this model's cross-attention is ${cross} wide`, 'image_proj');
  }
  if (adapter.layers !== order.length) {
    throw new FileFormatError(adapter.file, `IP-Adapter for another base model: it has ${adapter.layers} cross-attention layers but this model has ${order.length}`, 'ip_adapter');
  }
}

/** One adapter in a UNet graph: its weights and its number of image tokens. */
export interface IPAdapterBinding {
  readonly adapter: IPAdapter;
  readonly numTokens: number;
}

/** The UNet variant that adds every adapter's decoupled attention to every attn2. */
export function ipAdapterVariant(unet: UNet, adapters: readonly IPAdapterBinding[]): UNetVariant | undefined {
  if (adapters.length === 0) return undefined;
  const order = crossAttentionOrder(unet);
  for (const a of adapters) checkAdapterFits(a.adapter, unet, order);
  const index = new Map(order.map((p, k) => [p, 2 * k + 1] as const));
  const cross = unet.config.crossAttentionDim;
  return {
    key: `ip[${adapters.map((a) => `${a.adapter.id}:${a.numTokens}`).join(',')}]`,
    hooks(g: Graph, batch: number): UNetHooks {
      const inputs = adapters.map((a, j) => ({
        tokens: g.input(tokensName(j), [batch, a.numTokens, cross]),
        scale: g.input(scaleName(j), [batch, 1, 1]),
      }));
      return {
        attention(call: AttentionCall): Value | undefined {
          if (call.kind !== 'attn2') return undefined;
          const n = index.get(call.path);
          if (n === undefined) throw new Error(`IP-Adapter: ${call.path} is not among the UNet's cross-attention layers`);
          const inner = call.q.dim(2);
          let out = call.plain(call.q, call.k, call.v);
          adapters.forEach((a, j) => {
            const vb = a.adapter.layer(n);
            const rowsOut = vb.shape('to_k_ip.weight')[0];
            if (rowsOut !== inner) {
              throw new FileFormatError(a.adapter.file, `IP-Adapter for another base model: this layer makes ${rowsOut}-wide keys but the model's ${call.path} is ${inner} wide`, `ip_adapter.${n}.to_k_ip.weight`);
            }
            const { tokens, scale } = inputs[j]!;
            const k = linear(tokens, vb.pp('to_k_ip'), cross, inner, false);
            const v = linear(tokens, vb.pp('to_v_ip'), cross, inner, false);
            out = op.add(out, op.mul(call.plain(call.q, k, v), scale));
          });
          return out;
        },
      };
    },
  };
}

/** Which tokens a UNet row sees: the image's (cond), the unconditional embeds' (uncond), or none (scale 0). */
export type IPRow = 'cond' | 'uncond' | null;

/** Projected tokens of one adapter for one image: [1, N, C] each. */
export interface IPAdapterTokens {
  readonly scale: number;
  readonly cond: Tensor;
  readonly uncond: Tensor;
}

/** Feeds for one UNet call: per row the tokens and scale of every adapter (`rowsOf[r]` says what row r sees). */
export function ipAdapterFeeds(adapters: readonly IPAdapterTokens[], rowsOf: readonly IPRow[]): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  adapters.forEach((a, j) => {
    const per = a.cond.data.length;
    const data = new Float32Array(rowsOf.length * per);
    rowsOf.forEach((r, i) => { if (r) data.set((r === 'cond' ? a.cond : a.uncond).data, i * per); });
    feeds[tokensName(j)] = { shape: [rowsOf.length, ...a.cond.shape.slice(1)], data };
    feeds[scaleName(j)] = { shape: [rowsOf.length, 1, 1], data: Float32Array.from(rowsOf, (r) => (r ? a.scale : 0)) };
  });
  return feeds;
}
