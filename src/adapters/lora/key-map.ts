/**
 * Where a LoRA file's module names point in a diffusers model: a table of file-key prefixes per
 * component, and the rules that turn the name after the prefix into a diffusers module path.
 *
 * kohya/A1111 names are diffusers paths with '.' replaced by '_' (`lora_unet_down_blocks_0_..._to_q`),
 * which cannot be split back (module names hold '_': to_q, proj_in, transformer_blocks), so they are
 * matched against the model's own module paths flattened the same way — what kohya does. SDXL files
 * from sd-scripts name UNet modules by the original SGM/LDM layout (`input_blocks_4_1_...`); those
 * are first rewritten to the diffusers block path by the rules below, and the rest of the name is
 * matched the same way. diffusers/PEFT names are dotted diffusers paths after a component prefix.
 */

/** The model parts a LoRA can touch, by their diffusers folder names. */
export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';

/** kohya/A1111 key prefixes (after `lora_`), longest first so `te1_` wins over `te_`. */
export const KOHYA_PREFIXES: readonly { readonly prefix: string; readonly component: LoraComponent }[] = [
  { prefix: 'lora_unet_', component: 'unet' },
  { prefix: 'lora_te1_', component: 'text_encoder' },
  { prefix: 'lora_te2_', component: 'text_encoder_2' },
  { prefix: 'lora_te_', component: 'text_encoder' },
];

/** diffusers/PEFT key prefixes; keys with none of them are UNet module paths (diffusers does the same). */
export const DIFFUSERS_PREFIXES: readonly { readonly prefix: string; readonly component: LoraComponent }[] = [
  { prefix: 'unet.', component: 'unet' },
  { prefix: 'text_encoder_2.', component: 'text_encoder_2' },
  { prefix: 'text_encoder.', component: 'text_encoder' },
];

/** The original ResBlock's layer names -> diffusers ResnetBlock2D's. */
const SGM_RESBLOCK: Readonly<Record<string, string>> = {
  in_layers_0: 'norm1', in_layers_2: 'conv1', emb_layers_1: 'time_emb_proj',
  out_layers_0: 'norm2', out_layers_3: 'conv2', skip_connection: 'conv_shortcut',
};

/** Whole-name SGM modules outside the blocks. */
const SGM_FIXED: Readonly<Record<string, string>> = {
  input_blocks_0_0: 'conv_in', time_embed_0: 'time_embedding.linear_1', time_embed_2: 'time_embedding.linear_2',
  label_emb_0_0: 'add_embedding.linear_1', label_emb_0_2: 'add_embedding.linear_2', out_0: 'conv_norm_out', out_2: 'conv_out',
};

export const flatten = (modulePath: string): string => modulePath.replace(/\./g, '_');

/** The module paths of one model part (every `<path>.weight` it holds), indexed for lookups. */
export class ModuleIndex {
  private readonly flat = new Map<string, string>();
  readonly paths: ReadonlySet<string>;
  /** ResnetBlock2D layers per down block (UNets): the SGM numbering depends on it. */
  private readonly layersPerBlock: number;

  constructor(weightKeys: Iterable<string>) {
    const paths = new Set<string>();
    for (const k of weightKeys) if (k.endsWith('.weight')) paths.add(k.slice(0, -'.weight'.length));
    this.paths = paths;
    for (const p of paths) this.flat.set(flatten(p), p);
    let n = 0;
    while (paths.has(`down_blocks.0.resnets.${n}.conv1`)) n++;
    this.layersPerBlock = n;
  }

  has(path: string): boolean { return this.paths.has(path); }

  /** The module a kohya name (after its `lora_unet_`/`lora_te_` prefix) denotes, or undefined. */
  resolveKohya(name: string, component: LoraComponent): string | undefined {
    const direct = this.flat.get(name);
    if (direct !== undefined) return direct;
    if (component !== 'unet') return undefined;
    const sgm = this.sgmToDiffusers(name);
    return sgm === undefined ? undefined : this.flat.get(sgm);
  }

  /**
   * An SGM-named UNet module (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`) as a flattened
   * diffusers path (`down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q`), by the LDM layout:
   * input block i >= 1 is layer (i-1) % (L+1) of down block (i-1) // (L+1), the last layer being the
   * downsampler; output block k is layer k % (L+1) of up block k // (L+1) (L+1 resnets each), its
   * third part (second when the up block has no attention) the upsampler; the middle block is
   * resnet, attention, resnet.
   */
  private sgmToDiffusers(name: string): string | undefined {
    for (const [from, to] of Object.entries(SGM_FIXED)) if (name === from) return flatten(to);
    const L = this.layersPerBlock;
    if (L === 0) return undefined;
    const resblock = (prefix: string, rest: string): string | undefined => {
      for (const [from, to] of Object.entries(SGM_RESBLOCK)) if (rest === from) return `${prefix}_${to}`;
      return undefined;
    };
    let m = /^input_blocks_(\d+)_(\d+)_(.+)$/.exec(name);
    if (m) {
      const i = Number(m[1]); const part = Number(m[2]); const rest = m[3]!;
      if (i < 1) return undefined;
      const d = Math.floor((i - 1) / (L + 1)); const j = (i - 1) % (L + 1);
      if (j === L) return part === 0 && rest === 'op' ? `down_blocks_${d}_downsamplers_0_conv` : undefined;
      if (part === 0) return resblock(`down_blocks_${d}_resnets_${j}`, rest);
      if (part === 1) return `down_blocks_${d}_attentions_${j}_${rest}`;
      return undefined;
    }
    m = /^middle_block_(\d+)_(.+)$/.exec(name);
    if (m) {
      const part = Number(m[1]); const rest = m[2]!;
      if (part === 0 || part === 2) return resblock(`mid_block_resnets_${part / 2}`, rest);
      if (part === 1) return `mid_block_attentions_0_${rest}`;
      return undefined;
    }
    m = /^output_blocks_(\d+)_(\d+)_(.+)$/.exec(name);
    if (m) {
      const k = Number(m[1]); const part = Number(m[2]); const rest = m[3]!;
      const u = Math.floor(k / (L + 1)); const j = k % (L + 1);
      const hasAttention = this.paths.has(`up_blocks.${u}.attentions.${j}.proj_in`);
      if (part === 0) return resblock(`up_blocks_${u}_resnets_${j}`, rest);
      if (part === 1 && hasAttention) return `up_blocks_${u}_attentions_${j}_${rest}`;
      if ((part === 2 || (part === 1 && !hasAttention)) && rest === 'conv') return `up_blocks_${u}_upsamplers_0_conv`;
      return undefined;
    }
    return undefined;
  }
}

/** kohya key -> (component, name after the prefix), or undefined when no kohya prefix fits. */
export function splitKohyaPrefix(module: string): { component: LoraComponent; name: string } | undefined {
  for (const { prefix, component } of KOHYA_PREFIXES) if (module.startsWith(prefix)) return { component, name: module.slice(prefix.length) };
  return undefined;
}

/** diffusers key -> (component, module path); unprefixed paths are the UNet's. */
export function splitDiffusersPrefix(module: string): { component: LoraComponent; name: string } {
  for (const { prefix, component } of DIFFUSERS_PREFIXES) if (module.startsWith(prefix)) return { component, name: module.slice(prefix.length) };
  return { component: 'unet', name: module };
}

/**
 * Old diffusers attention-processor names: `<attn>.processor.to_q_lora` is `<attn>.to_q`,
 * `to_out_lora` is `to_out.0` (diffusers' own conversion of these files).
 */
export function fromAttnProcessorName(path: string): string {
  const m = /^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora$/.exec(path);
  if (!m) return path;
  return `${m[1]}.${m[2] === 'to_out' ? 'to_out.0' : m[2]}`;
}
