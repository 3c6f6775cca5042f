/**
 * A LoRA file read as a list of low-rank modules: for each adapted layer its down/up tensors (kohya
 * `lora_down`/`lora_up`, PEFT `lora_A`/`lora_B`, old diffusers `lora.down`/`lora.up`), its rank and
 * its alpha (kohya `.alpha`; absent = rank, as diffusers does). Nothing is applied here; tensors are
 * read from the file when a merged weight is computed.
 */
import { FileFormatError } from '../../errors.js';
import { openTensorFile } from '../../io/tensor-file.js';
import type { Tensor } from '../../tensor.js';
import { fromAttnProcessorName, splitDiffusersPrefix, splitKohyaPrefix, type LoraComponent } from './key-map.js';

/** What a LoRA reader needs of a tensor file. */
export interface LoraTensorFile {
  readonly path: string;
  keys(): Iterable<string>;
  shape(key: string): readonly number[];
  readFloat32(key: string): Tensor;
  close(): void;
}

export type LoraFormat = 'kohya' | 'diffusers';

export interface LoraModule {
  readonly component: LoraComponent;
  /** The module name as the file gives it, after the component prefix (kohya: flattened; diffusers: dotted). */
  readonly name: string;
  /** The full name in the file (for messages), e.g. `lora_unet_down_blocks_0_..._to_q`. */
  readonly fileName: string;
  readonly down: string;
  readonly up: string;
  readonly alphaKey?: string;
  readonly rank: number;
  readonly alpha: number;
}

export interface LoraFile {
  readonly path: string;
  readonly format: LoraFormat;
  readonly modules: readonly LoraModule[];
  readonly tensors: LoraTensorFile;
}

/** kohya suffix -> role. */
const KOHYA_ROLES: Readonly<Record<string, 'down' | 'up' | 'alpha'>> = { '.lora_down.weight': 'down', '.lora_up.weight': 'up', '.alpha': 'alpha' };
/** diffusers suffix -> role (PEFT, old diffusers LoRALinearLayer, attention processors). */
const DIFFUSERS_ROLES: Readonly<Record<string, 'down' | 'up' | 'alpha'>> = {
  '.lora_A.weight': 'down', '.lora_B.weight': 'up', '.lora.down.weight': 'down', '.lora.up.weight': 'up',
  '.lora_linear_layer.down.weight': 'down', '.lora_linear_layer.up.weight': 'up', '.down.weight': 'down', '.up.weight': 'up', '.alpha': 'alpha',
};
/** Known adapter kinds we do not merge: refused by name rather than reported as unmatched keys. */
const UNSUPPORTED: readonly [RegExp, string][] = [
  [/\.(hada_w1_a|hada_w2_a|hada_t1)$/, 'LoHa (LyCORIS)'],
  [/\.(lokr_w1|lokr_w2|lokr_w1_a|lokr_w2_a)$/, 'LoKr (LyCORIS)'],
  [/\.lora_mid\.weight$/, 'LoCon with a Tucker (lora_mid) factor'],
  [/\.(dora_scale|lora_magnitude_vector(\.weight)?)$/, 'DoRA'],
  [/\.(diff|diff_b)$/, 'full weight-difference (diff)'],
  [/\.(w_norm|b_norm)$/, 'norm-layer fine-tune (w_norm/b_norm)'],
];

/** A LoRA file: .safetensors, or a torch pickle (.pt/.bin/.ckpt, read weights-only: nothing in it is executed). */
export function openLoraTensorFile(path: string): LoraTensorFile {
  const f = openTensorFile(path);
  return {
    path,
    keys: () => f.tensors.keys(),
    shape: (k) => f.info(k).shape,
    readFloat32: (k) => f.readFloat32(k),
    close: () => f.close(),
  };
}

/** Parse a LoRA file's key layout (headers only; alphas are read, weights are not). */
export function readLoraFile(path: string): LoraFile {
  const tensors = openLoraTensorFile(path);
  try {
    return { ...parseLora(tensors), path, tensors };
  } catch (e) {
    tensors.close();
    throw e;
  }
}

function parseLora(t: LoraTensorFile): { format: LoraFormat; modules: LoraModule[] } {
  const keys = [...t.keys()];
  if (keys.length === 0) throw new FileFormatError(t.path, 'LoRA file holds no tensors');
  for (const k of keys) {
    for (const [re, kind] of UNSUPPORTED) if (re.test(k)) throw new FileFormatError(t.path, `${kind} adapters are not supported (only LoRA down/up pairs)`, k);
  }
  const kohya = keys.some((k) => splitKohyaPrefix(k) !== undefined);
  const format: LoraFormat = kohya ? 'kohya' : 'diffusers';
  const roles = kohya ? KOHYA_ROLES : DIFFUSERS_ROLES;
  const groups = new Map<string, { down?: string; up?: string; alpha?: string }>();
  const unknown: string[] = [];
  for (const k of keys) {
    const suffix = Object.keys(roles).find((s) => k.endsWith(s));
    if (!suffix) { unknown.push(k); continue; }
    const module = k.slice(0, -suffix.length);
    const g = groups.get(module) ?? {};
    g[roles[suffix]!] = k;
    groups.set(module, g);
  }
  if (unknown.length > 0) {
    throw new FileFormatError(t.path, `not a LoRA tensor name (expected ${Object.keys(roles).filter((s) => s !== '.alpha').join(' / ')} or .alpha; ${unknown.length} such keys, e.g. ${unknown.slice(0, 3).join(', ')})`, unknown[0]);
  }
  const modules: LoraModule[] = [];
  for (const [module, g] of groups) {
    if (!g.down || !g.up) {
      const have = g.down ?? g.up ?? g.alpha!;
      throw new FileFormatError(t.path, `LoRA module ${module} has ${g.down ? 'no up' : 'no down'} weight (a down/up pair is needed)`, have);
    }
    const down = t.shape(g.down); const up = t.shape(g.up);
    const rank = down[0] ?? 0;
    if (down.length < 2 || rank === 0) throw new FileFormatError(t.path, `LoRA down weight must be [rank, in(, kh, kw)], got [${down.join(', ')}]`, g.down);
    if (up.length < 2 || up[1] !== rank || up.slice(2).some((d) => d !== 1)) {
      throw new FileFormatError(t.path, `LoRA up weight must be [out, ${rank}(, 1, 1)] for the down weight's rank ${rank}, got [${up.join(', ')}]`, g.up);
    }
    let alpha = rank;
    if (g.alpha) {
      const a = t.readFloat32(g.alpha);
      if (a.data.length !== 1 || !Number.isFinite(a.data[0]!)) throw new FileFormatError(t.path, `alpha must be one finite number, got ${a.data.length} values`, g.alpha);
      alpha = a.data[0]!;
    }
    let component: LoraComponent; let name: string;
    if (kohya) {
      const s = splitKohyaPrefix(module);
      if (!s) throw new FileFormatError(t.path, 'kohya LoRA key without a lora_unet_ / lora_te_ / lora_te1_ / lora_te2_ prefix', g.down);
      ({ component, name } = s);
    } else {
      ({ component, name } = splitDiffusersPrefix(module));
      name = fromAttnProcessorName(name);
    }
    modules.push({ component, name, fileName: module, down: g.down, up: g.up, ...(g.alpha ? { alphaKey: g.alpha } : {}), rank, alpha });
  }
  return { format, modules };
}
