/**
 * Hook points of the denoising networks, addressed by diffusers module path. A model calls these
 * while it builds its graph; an image-prompt method implements them. With no hook the graph is the
 * plain model. Hooks run at graph-build time: what they return is IR, so per-step behaviour must
 * come in through graph inputs the method declares (scalars, masks, reference tensors).
 */
import type { Value } from '../graph/ir.js';

export interface AttentionCall {
  /** e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn1` */
  readonly path: string;
  /** attn1: self-attention of a transformer block; attn2: cross-attention on the text; spatial: pixel self-attention (VAE, UNet2DModel). */
  readonly kind: 'attn1' | 'attn2' | 'spatial';
  /** Projections with heads merged: [B, Nq, H*D], [B, Nk, H*D], [B, Nk, H*D]. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly heads: number;
  readonly scale: number;
  /** The plain attention softmax(scale Q K^T) V, heads merged; call it to get the default. */
  plain(q: Value, k: Value, v: Value): Value;
  /**
   * Set where UNetHooks.keepRows drops rows at this layer: the batch rows whose output is used, in order;
   * the hook returns [outputRows.length, Nq, C] (q, k, v still hold every row).
   */
  readonly outputRows?: readonly number[];
}

/** A GroupNorm of the denoising UNet (resnet norm1/norm2, Transformer2DModel norm, conv_norm_out). */
export interface GroupNormCall {
  /** e.g. `down_blocks.0.resnets.1.norm2`, `mid_block.attentions.0.norm`, `conv_norm_out` */
  readonly path: string;
  /** [B, C, H, W] */
  readonly x: Value;
  /** The layer itself (statistics over its groups, then its affine) on any [B', C, H', W'] input. */
  norm(x: Value): Value;
}

export interface UNetHooks {
  /** Replace an attention layer's core (before to_out). Return undefined to keep the plain one. */
  attention?(call: AttentionCall): Value | undefined;
  /** Replace a GroupNorm (StyleAligned's shared statistics). Return undefined to keep the plain one. */
  groupNorm?(call: GroupNormCall): Value | undefined;
  /** The mid-block output (h-space) and the time embedding; return the value the up blocks should see. */
  midBlock?(h: Value, temb: Value): Value;
  /** Each skip connection as the up blocks will consume it (index in diffusers' down_block_res_samples order). */
  skip?(index: number, s: Value): Value;
  /**
   * Asked before each self-attention layer of the up path (after its Q/K/V projections; `later`: the attn1
   * paths still to come, in order): the batch rows (increasing) this layer's output and everything after it
   * need, or undefined for all. The model then computes only those rows and returns zeros for the others
   * (a reference row whose noise prediction nobody reads, once no later layer reads its keys and values).
   */
  keepRows?(path: string, later: readonly string[]): readonly number[] | undefined;
  /** Named intermediates (diffusers module paths), for tests and for methods that read them. */
  tap?(name: string, v: Value): void;
}
