/**
 * The architecture of a single-file (original-layout) SD 1.x / 2.x / XL checkpoint, inferred from the tensor
 * SHAPES in its header (no tensor data is read), and the diffusers keys each inferred architecture needs
 * (looked up under their original names by original-layout-source.ts's buildEntries).
 */
import { FileFormatError, InputError } from '../errors.js';
import { CLIP_PREFIX, COND_PROJ_ORIGINAL, OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, type TextEncoderLayout } from './original-keymap.js';
import type { TensorFile } from './tensor-file.js';

export interface UNetArch {
  inChannels: number;
  outChannels: number;
  channels: number[];
  layersPerBlock: number;
  downAttention: boolean[];
  /** diffusers up-block order */
  upAttention: boolean[];
  /** transformer blocks per level (down order) */
  depth: number[];
  crossAttentionDim: number;
  linearProjection: boolean;
  /** SDXL: in_features of label_emb.0.0 (diffusers' projection_class_embeddings_input_dim). */
  addInputDim?: number;
  /** LCM-distilled: the guidance projection's original prefix and its in_features (diffusers' time_cond_proj_dim). */
  condProj?: { prefix: string; dim: number };
}

export interface VaeArch {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  channels: number[];
  layersPerBlock: number;
  midAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
}

export interface TextArch {
  layout: TextEncoderLayout;
  /** CLIP stored without the `text_model.` level (old exports). */
  legacyClip: boolean;
  hidden: number;
  intermediate: number;
  layers: number;
  storedLayers: number;
  vocab: number;
  maxPositions: number;
}

export class Header {
  constructor(readonly file: TensorFile) {}
  get path(): string { return this.file.path; }
  has(k: string): boolean { return this.file.tensors.has(k); }
  shape(k: string, why: string): readonly number[] {
    const t = this.file.tensors.get(k);
    if (!t) throw new FileFormatError(this.path, `missing tensor (needed to infer ${why})`, k);
    return t.shape;
  }
  dim(k: string, axis: number, why: string, rank?: number): number {
    const s = this.shape(k, why);
    if ((rank !== undefined && s.length !== rank) || s[axis] === undefined) {
      throw new FileFormatError(this.path, `unexpected shape [${s.join(', ')}] (needed to infer ${why})`, k);
    }
    return s[axis]!;
  }
  /** Distinct values of the first capture group over all keys. */
  indices(re: RegExp): number[] { return keyIndices(this.file, re); }
}

/** Distinct values of the first capture group of `re` over all tensor names of `file`, ascending. */
export function keyIndices(file: Pick<TensorFile, 'tensors'>, re: RegExp): number[] {
  const out = new Set<number>();
  for (const k of file.tensors.keys()) {
    const m = re.exec(k);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function inferUnet(h: Header): UNetArch {
  const P = UNET_PREFIX;
  const why = 'the UNet configuration';
  const convIn = h.shape(`${P}input_blocks.0.0.weight`, why);
  if (convIn.length !== 4) throw new FileFormatError(h.path, `expected a 4-D conv weight, got shape [${convIn.join(', ')}]`, `${P}input_blocks.0.0.weight`);
  const blocks = h.indices(new RegExp(`^${esc(P)}input_blocks\\.(\\d+)\\.`));
  const numInput = blocks.length === 0 ? 0 : blocks[blocks.length - 1]! + 1;
  const ops = h.indices(new RegExp(`^${esc(P)}input_blocks\\.(\\d+)\\.0\\.op\\.weight$`));
  const layersPerBlock = ops.length > 0 ? ops[0]! - 1 : numInput - 1;
  const levels = ops.length + 1;
  const per = layersPerBlock + 1;
  if (layersPerBlock < 1 || numInput !== levels * per || ops.some((o, i) => o !== (i + 1) * per)) {
    throw new FileFormatError(h.path, `unexpected UNet layout: ${numInput} input blocks with downsamplers at [${ops.join(', ')}] do not form levels of equal depth (not an SD 1.x/2.x UNet?)`, `${P}input_blocks`);
  }
  const channels: number[] = [];
  const downAttention: boolean[] = [];
  const depth: number[] = [];
  let firstAttn: string | undefined;
  for (let b = 0; b < levels; b++) {
    const i = 1 + b * per;
    channels.push(h.dim(`${P}input_blocks.${i}.0.out_layers.3.weight`, 0, why));
    const attn = `${P}input_blocks.${i}.1.`;
    const has = h.has(`${attn}proj_in.weight`);
    downAttention.push(has);
    if (has) {
      firstAttn ??= attn;
      depth.push(h.indices(new RegExp(`^${esc(attn)}transformer_blocks\\.(\\d+)\\.`)).length);
    } else {
      depth.push(1);
    }
  }
  const upAttention = Array.from({ length: levels }, (_, u) => h.has(`${P}output_blocks.${u * per}.1.proj_in.weight`));
  if (!h.has(`${P}middle_block.1.proj_in.weight`)) {
    throw new FileFormatError(h.path, 'the UNet mid block has no cross-attention transformer (SD 1.x/2.x UNets have one)', `${P}middle_block.1.proj_in.weight`);
  }
  firstAttn ??= `${P}middle_block.1.`;
  const crossAttentionDim = h.dim(`${firstAttn}transformer_blocks.0.attn2.to_k.weight`, 1, 'cross_attention_dim', 2);
  const linearProjection = h.shape(`${firstAttn}proj_in.weight`, 'use_linear_projection').length === 2;
  const label = `${P}label_emb.0.0.weight`;
  return {
    inChannels: convIn[1]!,
    outChannels: h.dim(`${P}out.2.weight`, 0, why),
    channels, layersPerBlock, downAttention, upAttention, depth, crossAttentionDim, linearProjection,
    ...(h.has(label) ? { addInputDim: h.dim(label, 1, 'projection_class_embeddings_input_dim', 2) } : {}),
    ...condProjOf(h),
  };
}

function condProjOf(h: Header): { condProj?: { prefix: string; dim: number } } {
  const prefix = COND_PROJ_ORIGINAL.find((p) => h.has(`${UNET_PREFIX}${p}weight`));
  return prefix ? { condProj: { prefix, dim: h.dim(`${UNET_PREFIX}${prefix}weight`, 1, 'time_cond_proj_dim', 2) } } : {};
}

export function inferVae(h: Header): VaeArch {
  const P = VAE_PREFIX;
  const why = 'the VAE configuration';
  const levels = h.indices(new RegExp(`^${esc(P)}encoder\\.down\\.(\\d+)\\.`));
  if (levels.length === 0 || levels[levels.length - 1] !== levels.length - 1) {
    throw new FileFormatError(h.path, `expected VAE encoder levels ${P}encoder.down.0, .1, ...; found [${levels.join(', ')}]`, `${P}encoder.down.0`);
  }
  const channels = levels.map((i) => h.dim(`${P}encoder.down.${i}.block.0.conv1.weight`, 0, why));
  const layersPerBlock = h.indices(new RegExp(`^${esc(P)}encoder\\.down\\.0\\.block\\.(\\d+)\\.`)).length;
  return {
    inChannels: h.dim(`${P}encoder.conv_in.weight`, 1, why),
    outChannels: h.dim(`${P}decoder.conv_out.weight`, 0, why),
    latentChannels: h.dim(`${P}decoder.conv_in.weight`, 1, why),
    channels, layersPerBlock,
    midAttention: h.has(`${P}encoder.mid.attn_1.q.weight`) || h.has(`${P}decoder.mid.attn_1.q.weight`),
    quantConv: h.has(`${P}quant_conv.weight`),
    postQuantConv: h.has(`${P}post_quant_conv.weight`),
  };
}

/** `prefixes`: SDXL's (conditioner.embedders.*), which keep every layer (SDXL reads hidden_states[-2] itself). */
export function inferText(h: Header, layout: TextEncoderLayout, layersOpt: number | undefined, prefixes?: { clip: string; openclip: string }): TextArch {
  const why = 'the text encoder configuration';
  const clipPrefix = prefixes?.clip ?? CLIP_PREFIX;
  if (layout === 'openclip') {
    const P = prefixes?.openclip ?? OPEN_CLIP_PREFIX;
    const [vocab, hidden] = h.shape(`${P}token_embedding.weight`, why) as [number, number];
    const stored = h.indices(new RegExp(`^${esc(P)}transformer\\.resblocks\\.(\\d+)\\.`)).length;
    const layers = layersOpt ?? (prefixes ? stored : stored - 1);
    if (layers < 1 || layers > stored) throw new InputError(`textLayers ${layers}: the OpenCLIP text encoder of ${h.path} has ${stored} resblocks`);
    return {
      layout, legacyClip: false, hidden, vocab, layers, storedLayers: stored,
      intermediate: h.dim(`${P}transformer.resblocks.0.mlp.c_fc.weight`, 0, why),
      maxPositions: h.dim(`${P}positional_embedding`, 0, why),
    };
  }
  // transformers' CLIPTextModel; very old exports lack the `text_model.` level.
  const legacyClip = !h.has(`${clipPrefix}text_model.embeddings.token_embedding.weight`) && h.has(`${clipPrefix}embeddings.token_embedding.weight`);
  const root = legacyClip ? clipPrefix : `${clipPrefix}text_model.`;
  const [vocab, hidden] = h.shape(`${root}embeddings.token_embedding.weight`, why) as [number, number];
  const stored = h.indices(new RegExp(`^${esc(root)}encoder\\.layers\\.(\\d+)\\.`)).length;
  const layers = layersOpt ?? stored;
  if (layers < 1 || layers > stored) throw new InputError(`textLayers ${layers}: the CLIP text encoder of ${h.path} has ${stored} layers`);
  return {
    layout, legacyClip, hidden, vocab, layers, storedLayers: stored,
    intermediate: h.dim(`${root}encoder.layers.0.mlp.fc1.weight`, 0, why),
    maxPositions: h.dim(`${root}embeddings.position_embedding.weight`, 0, why),
  };
}

// ---------------------------------------------------------------------------------------------------
// Diffusers keys each architecture needs

export function unetKeys(a: UNetArch): string[] {
  const keys: string[] = [];
  const wb = (p: string): void => { keys.push(`${p}.weight`, `${p}.bias`); };
  const resnet = (p: string, inC: number, outC: number): void => {
    for (const n of ['norm1', 'conv1', 'time_emb_proj', 'norm2', 'conv2']) wb(`${p}.${n}`);
    if (inC !== outC) wb(`${p}.conv_shortcut`);
  };
  const transformer = (p: string, depth: number): void => {
    for (const n of ['norm', 'proj_in', 'proj_out']) wb(`${p}.${n}`);
    for (let t = 0; t < depth; t++) {
      const tb = `${p}.transformer_blocks.${t}`;
      for (const n of ['norm1', 'norm2', 'norm3', 'ff.net.0.proj', 'ff.net.2']) wb(`${tb}.${n}`);
      for (const attn of ['attn1', 'attn2']) {
        for (const n of ['to_q', 'to_k', 'to_v']) keys.push(`${tb}.${attn}.${n}.weight`);
        wb(`${tb}.${attn}.to_out.0`);
      }
    }
  };
  for (const n of ['time_embedding.linear_1', 'time_embedding.linear_2', 'conv_in', 'conv_norm_out', 'conv_out']) wb(n);
  if (a.addInputDim !== undefined) { wb('add_embedding.linear_1'); wb('add_embedding.linear_2'); }
  if (a.condProj) keys.push('time_embedding.cond_proj.weight'); // nn.Linear(bias=False)
  const n = a.channels.length;
  let ch = a.channels[0]!;
  const skips = [ch];
  for (let b = 0; b < n; b++) {
    const out = a.channels[b]!;
    for (let j = 0; j < a.layersPerBlock; j++) {
      resnet(`down_blocks.${b}.resnets.${j}`, ch, out);
      ch = out;
      if (a.downAttention[b]) transformer(`down_blocks.${b}.attentions.${j}`, a.depth[b]!);
      skips.push(ch);
    }
    if (b < n - 1) { wb(`down_blocks.${b}.downsamplers.0.conv`); skips.push(ch); }
  }
  resnet('mid_block.resnets.0', ch, ch);
  transformer('mid_block.attentions.0', a.depth[n - 1]!);
  resnet('mid_block.resnets.1', ch, ch);
  for (let u = 0; u < n; u++) {
    const out = a.channels[n - 1 - u]!;
    for (let j = 0; j <= a.layersPerBlock; j++) {
      const skip = skips.pop()!;
      resnet(`up_blocks.${u}.resnets.${j}`, ch + skip, out);
      ch = out;
      if (a.upAttention[u]) transformer(`up_blocks.${u}.attentions.${j}`, a.depth[n - 1 - u]!);
    }
    if (u < n - 1) wb(`up_blocks.${u}.upsamplers.0.conv`);
  }
  return keys;
}

export function vaeKeys(a: VaeArch): string[] {
  const keys: string[] = [];
  const wb = (p: string): void => { keys.push(`${p}.weight`, `${p}.bias`); };
  const resnet = (p: string, inC: number, outC: number): void => {
    for (const n of ['norm1', 'conv1', 'norm2', 'conv2']) wb(`${p}.${n}`);
    if (inC !== outC) wb(`${p}.conv_shortcut`);
  };
  const mid = (p: string, c: number): void => {
    resnet(`${p}.mid_block.resnets.0`, c, c);
    if (a.midAttention) for (const n of ['group_norm', 'to_q', 'to_k', 'to_v', 'to_out.0']) wb(`${p}.mid_block.attentions.0.${n}`);
    resnet(`${p}.mid_block.resnets.1`, c, c);
  };
  const n = a.channels.length;
  wb('encoder.conv_in');
  let ch = a.channels[0]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < a.layersPerBlock; j++) { resnet(`encoder.down_blocks.${i}.resnets.${j}`, ch, a.channels[i]!); ch = a.channels[i]!; }
    if (i < n - 1) wb(`encoder.down_blocks.${i}.downsamplers.0.conv`);
  }
  mid('encoder', ch);
  wb('encoder.conv_norm_out');
  wb('encoder.conv_out');
  if (a.quantConv) wb('quant_conv');
  if (a.postQuantConv) wb('post_quant_conv');
  wb('decoder.conv_in');
  ch = a.channels[n - 1]!;
  mid('decoder', ch);
  for (let i = 0; i < n; i++) {
    const out = a.channels[n - 1 - i]!;
    for (let j = 0; j <= a.layersPerBlock; j++) { resnet(`decoder.up_blocks.${i}.resnets.${j}`, ch, out); ch = out; }
    if (i < n - 1) wb(`decoder.up_blocks.${i}.upsamplers.0.conv`);
  }
  wb('decoder.conv_norm_out');
  wb('decoder.conv_out');
  return keys;
}

export function textKeys(a: TextArch, projection = false): string[] {
  const keys = [...(projection ? ['text_projection.weight'] : []),'text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight', 'text_model.final_layer_norm.weight', 'text_model.final_layer_norm.bias'];
  for (let i = 0; i < a.layers; i++) {
    for (const n of ['layer_norm1', 'layer_norm2', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) {
      keys.push(`text_model.encoder.layers.${i}.${n}.weight`, `text_model.encoder.layers.${i}.${n}.bias`);
    }
  }
  return keys;
}
