/**
 * ControlNets in the original (lllyasviel / ldm) layout, as released as `.pth` / `.safetensors` files:
 * the UNet encoder half under ldm names (`input_blocks.*`, `middle_block.*`, `time_embed.*`), the hint
 * encoder `input_hint_block.{0,2,...,2n+2}` (conv_in, n blocks, conv_out), the zero convolutions
 * `zero_convs.<k>.0` and `middle_block_out.0`, optionally under `control_model.` (the v1.0 files that
 * also hold a whole SD model). The keys are mapped to diffusers' ControlNetModel names (as diffusers'
 * convert_controlnet_checkpoint does) and the config is inferred from tensor shapes, or read from a
 * `config.json` beside the file when there is one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { Config, type Json } from './config.js';
import { keyIndices } from './original-architecture.js';
import { openTensorFile, type TensorFile } from './tensor-file.js';
import type { TensorSource } from './weights.js';

const RESNET: Record<string, string> = {
  'in_layers.0': 'norm1', 'in_layers.2': 'conv1', 'emb_layers.1': 'time_emb_proj', 'out_layers.0': 'norm2', 'out_layers.3': 'conv2', skip_connection: 'conv_shortcut',
};

/** The key prefix of an original-layout ControlNet in this file ('' or 'control_model.'), or undefined. */
export function originalControlNetPrefix(f: Pick<TensorFile, 'has'>): string | undefined {
  for (const p of ['', 'control_model.']) if (f.has(`${p}input_hint_block.0.weight`) && f.has(`${p}input_blocks.0.0.weight`)) return p;
  return undefined;
}

/** Whether `file` holds an original-layout ControlNet (a file, not a diffusers folder). */
export function isOriginalControlNetFile(file: string): boolean {
  if (!fs.statSync(file).isFile()) return false;
  const f = openTensorFile(file);
  try { return originalControlNetPrefix(f) !== undefined; } finally { f.close(); }
}

function resnet(rest: string): string | undefined {
  const m = /^(in_layers\.0|in_layers\.2|emb_layers\.1|out_layers\.0|out_layers\.3|skip_connection)\.(.+)$/.exec(rest);
  return m ? `${RESNET[m[1]!]}.${m[2]}` : undefined;
}

/** The diffusers name of one original key (without prefix), or undefined for keys a ControlNet does not use. */
export function diffusersControlNetKey(k: string, layersPerBlock: number, hintLast: number): string | undefined {
  const per = layersPerBlock + 1;
  let m: RegExpExecArray | null;
  if ((m = /^time_embed\.([02])\.(.+)$/.exec(k))) return `time_embedding.linear_${m[1] === '0' ? 1 : 2}.${m[2]}`;
  if ((m = /^input_blocks\.0\.0\.(.+)$/.exec(k))) return `conv_in.${m[1]}`;
  if ((m = /^input_blocks\.(\d+)\.0\.op\.(.+)$/.exec(k))) {
    const n = Number(m[1]);
    return n % per === 0 ? `down_blocks.${n / per - 1}.downsamplers.0.conv.${m[2]}` : undefined;
  }
  if ((m = /^input_blocks\.(\d+)\.([01])\.(.+)$/.exec(k))) {
    const n = Number(m[1]) - 1;
    const b = Math.floor(n / per), j = n % per;
    if (j >= layersPerBlock) return undefined;
    if (m[2] === '1') return `down_blocks.${b}.attentions.${j}.${m[3]}`;
    const r = resnet(m[3]!);
    return r && `down_blocks.${b}.resnets.${j}.${r}`;
  }
  if ((m = /^middle_block\.([02])\.(.+)$/.exec(k))) {
    const r = resnet(m[2]!);
    return r && `mid_block.resnets.${m[1] === '0' ? 0 : 1}.${r}`;
  }
  if ((m = /^middle_block\.1\.(.+)$/.exec(k))) return `mid_block.attentions.0.${m[1]}`;
  if ((m = /^input_hint_block\.(\d+)\.(.+)$/.exec(k))) {
    const i = Number(m[1]);
    if (i === 0) return `controlnet_cond_embedding.conv_in.${m[2]}`;
    if (i === hintLast) return `controlnet_cond_embedding.conv_out.${m[2]}`;
    return i % 2 === 0 ? `controlnet_cond_embedding.blocks.${i / 2 - 1}.${m[2]}` : undefined;
  }
  if ((m = /^zero_convs\.(\d+)\.0\.(.+)$/.exec(k))) return `controlnet_down_blocks.${m[1]}.${m[2]}`;
  if ((m = /^middle_block_out\.0\.(.+)$/.exec(k))) return `controlnet_mid_block.${m[1]}`;
  return undefined;
}

class OriginalControlNetSource implements TensorSource {
  constructor(readonly origin: string, private readonly file: TensorFile, private readonly stored: ReadonlyMap<string, string>) {}
  keys(): Iterable<string> { return this.stored.keys(); }
  has(key: string): boolean { return this.stored.has(key); }
  shape(key: string): readonly number[] { return this.file.info(this.name(key)).shape; }
  read(key: string): Tensor { return this.file.readFloat32(this.name(key)); }
  private name(key: string): string {
    const s = this.stored.get(key);
    if (s === undefined) throw new FileFormatError(this.origin, 'missing weight', key);
    return s;
  }
}

/** Open an original-layout ControlNet file: config (beside the file, else inferred) and weights under diffusers names. */
export function openOriginalControlNet(file: string): { config: Config; weights: TensorSource } {
  const f = openTensorFile(file);
  const P = originalControlNetPrefix(f);
  if (P === undefined) {
    f.close();
    throw new FileFormatError(file, 'not a ControlNet: expected input_hint_block.* and input_blocks.* tensors (original layout) or a diffusers ControlNet folder with config.json');
  }
  const esc = P.replace(/\./g, '\\.');
  const shape = (k: string): readonly number[] => {
    if (!f.has(P + k)) throw new FileFormatError(file, 'missing tensor (needed to infer the ControlNet configuration)', P + k);
    return f.info(P + k).shape;
  };
  const numInput = (keyIndices(f, new RegExp(`^${esc}input_blocks\\.(\\d+)\\.`)).pop() ?? 0) + 1;
  const ops = keyIndices(f, new RegExp(`^${esc}input_blocks\\.(\\d+)\\.0\\.op\\.weight$`));
  const layersPerBlock = ops.length > 0 ? ops[0]! - 1 : numInput - 1;
  const levels = ops.length + 1;
  const per = layersPerBlock + 1;
  // Every level has the same depth, so downsampler i sits at block (i + 1) * per (as the UNet reader requires).
  if (layersPerBlock < 1 || numInput !== levels * per || ops.some((o, i) => o !== (i + 1) * per)) throw new FileFormatError(file, `unexpected ControlNet layout: ${numInput} input blocks with downsamplers at [${ops.join(', ')}]`, `${P}input_blocks`);
  const hints = keyIndices(f, new RegExp(`^${esc}input_hint_block\\.(\\d+)\\.weight$`));
  const hintLast = hints[hints.length - 1]!;
  if (hints.some((h, i) => h !== 2 * i) || hints.length < 2) throw new FileFormatError(file, `input_hint_block convolutions at [${hints.join(', ')}], expected 0, 2, 4, ...`, `${P}input_hint_block`);

  const stored = new Map<string, string>();
  for (const k of f.tensors.keys()) {
    if (!k.startsWith(P)) continue;
    const d = diffusersControlNetKey(k.slice(P.length), layersPerBlock, hintLast);
    if (d !== undefined) stored.set(d, k);
  }
  const weights = new OriginalControlNetSource(file, f, stored);

  const beside = path.join(path.dirname(file), 'config.json');
  if (fs.existsSync(beside)) return { config: Config.read(beside), weights };

  const channels: number[] = [];
  const attention: boolean[] = [];
  const depth: number[] = [];
  let firstAttn: string | undefined;
  for (let b = 0; b < levels; b++) {
    const i = 1 + b * per;
    channels.push(shape(`input_blocks.${i}.0.out_layers.3.weight`)[0]!);
    const has = f.has(`${P}input_blocks.${i}.1.proj_in.weight`);
    attention.push(has);
    if (has) firstAttn ??= `input_blocks.${i}.1.`;
    depth.push(has ? keyIndices(f, new RegExp(`^${esc}input_blocks\\.${i}\\.1\\.transformer_blocks\\.(\\d+)\\.`)).length : 1);
  }
  firstAttn ??= 'middle_block.1.';
  const cross = shape(`${firstAttn}transformer_blocks.0.attn2.to_k.weight`)[1]!;
  const linear = shape(`${firstAttn}proj_in.weight`).length === 2;
  // Heads are not in the weights: SD 1.x ControlNets use 8, SD 2.x ones 64-channel heads.
  const heads = cross === 1024 ? channels.map((c) => Math.max(1, Math.floor(c / 64))) : channels.map(() => 8);
  const emb = [shape('input_hint_block.0.weight')[0]!];
  for (let i = 4; i < hintLast; i += 4) emb.push(shape(`input_hint_block.${i}.weight`)[0]!);
  const json: Record<string, Json> = {
    _class_name: 'ControlNetModel',
    act_fn: 'silu',
    attention_head_dim: heads.every((h) => h === heads[0]) ? heads[0]! : heads,
    block_out_channels: channels,
    conditioning_channels: shape('input_hint_block.0.weight')[1]!,
    conditioning_embedding_out_channels: emb,
    controlnet_conditioning_channel_order: 'rgb',
    cross_attention_dim: cross,
    down_block_types: attention.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    global_pool_conditions: false,
    in_channels: shape('input_blocks.0.0.weight')[1]!,
    layers_per_block: layersPerBlock,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: 1e-5,
    norm_num_groups: 32,
    transformer_layers_per_block: depth.every((d) => d === depth[0]) ? depth[0]! : depth,
    upcast_attention: false,
    use_linear_projection: linear,
  };
  return { config: new Config(file, json), weights };
}
