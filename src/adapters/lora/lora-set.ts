/**
 * Several LoRA files with their scales, resolved against a model's parts and checked in full before
 * anything is applied: every module must name a layer of the model and every shape must fit, or the
 * whole set is refused with one line (so a model is never left half-adapted).
 *
 * Scale semantics are diffusers v0.30.3's (PEFT backend): each adapted layer computes
 * `W x + b + scale * (alpha / rank) * up(down(x))`, for `cross_attention_kwargs={'scale': s}` (UNet and,
 * through encode_prompt's lora_scale, the text encoders) as for `set_adapters(names, weights)` with
 * several files (the terms of all files summed); merged as `fuse_lora` does. Scale 0 leaves a layer
 * untouched.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../../errors.js';
import type { TensorSource } from '../../io/weights.js';
import { ModuleIndex, type LoraComponent } from './key-map.js';
import { readLoraFile, type LoraFile, type LoraModule } from './lora-file.js';
import { LoraMergedSource, type LoraTerm } from './merged-source.js';

export interface LoraSpec {
  /** A LoRA file (kohya/A1111 or diffusers/PEFT layout). */
  readonly path: string;
  /** The adapter weight (diffusers `cross_attention_kwargs['scale']` / `set_adapters` weight); default 1. */
  readonly scale?: number;
}

/** `FILE[:SCALE]` as the CLI takes it (the scale after the last ':' when it is a number). */
export function parseLoraSpec(v: string, flag = '--lora'): LoraSpec {
  const m = /^(.*):([^:]*)$/.exec(v);
  if (m && m[1] !== '' && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(m[2]!.trim())) {
    return { path: m[1]!, scale: Number(m[2]) };
  }
  if (m && m[1] !== '' && m[2]!.trim() !== '' && !/[\\/]/.test(m[2]!)) throw new InputError(`${flag} scale must be a number, got ${JSON.stringify(m[2])} in ${JSON.stringify(v)} (expected FILE[:SCALE])`);
  if (v.trim() === '') throw new InputError(`${flag} needs a file (FILE[:SCALE])`);
  return { path: v };
}

/** The LoRAs applied to a model: the merged view of each part they touch. */
export class LoraSet {
  private constructor(
    readonly specs: readonly LoraSpec[],
    private readonly files: readonly LoraFile[],
    private readonly merged: ReadonlyMap<LoraComponent, LoraMergedSource>,
    /** Identifies files and scales (empty when nothing is merged). */
    readonly fingerprint: string,
  ) {}

  /**
   * Read and check `specs` against the model's parts (`parts[c]` gives a part's base weights, undefined
   * when the model has no such part). Throws before anything is returned if any module or shape does not fit.
   */
  static load(specs: readonly LoraSpec[], parts: (c: LoraComponent) => TensorSource | undefined, modelOrigin: string): LoraSet {
    const files: LoraFile[] = [];
    try {
      for (const s of specs) {
        const scale = s.scale ?? 1;
        if (!Number.isFinite(scale)) throw new InputError(`LoRA scale must be a finite number, got ${scale} for ${s.path}`);
        if (!fs.existsSync(s.path)) throw new InputError(`LoRA file not found: ${s.path}`);
        files.push(readLoraFile(s.path));
      }
      const terms = new Map<LoraComponent, Map<string, LoraTerm[]>>();
      const indexes = new Map<LoraComponent, ModuleIndex>();
      files.forEach((file, i) => {
        const scale = specs[i]!.scale ?? 1;
        const unmatched: LoraModule[] = [];
        for (const module of file.modules) {
          const base = parts(module.component);
          if (!base) {
            throw new FileFormatError(file.path, `LoRA adapts a ${module.component} (key ${module.fileName}), which ${modelOrigin} does not have: a LoRA for another base model${module.component === 'text_encoder_2' ? ' (SDXL)' : ''}?`, module.down);
          }
          let index = indexes.get(module.component);
          if (!index) { index = new ModuleIndex(base.keys()); indexes.set(module.component, index); }
          const target = file.format === 'kohya' ? index.resolveKohya(module.name, module.component) : (index.has(module.name) ? module.name : undefined);
          if (target === undefined) { unmatched.push(module); continue; }
          const key = `${target}.weight`;
          checkShapes(file, module, base.shape(key), `${module.component}.${target}`);
          if (scale === 0) continue;
          let byKey = terms.get(module.component);
          if (!byKey) { byKey = new Map(); terms.set(module.component, byKey); }
          const list = byKey.get(key) ?? [];
          list.push({ file, module, factor: (module.alpha / module.rank) * scale });
          byKey.set(key, list);
        }
        if (unmatched.length > 0) {
          const some = unmatched.slice(0, 3).map((m) => m.fileName).join(', ');
          throw new FileFormatError(file.path, `${unmatched.length} of ${file.modules.length} LoRA modules match no layer of ${modelOrigin} (${some}${unmatched.length > 3 ? ', ...' : ''}): a LoRA for another base model?`, unmatched[0]!.down);
        }
      });
      const fp = terms.size === 0 ? '' : fingerprint(specs);
      const merged = new Map<LoraComponent, LoraMergedSource>();
      for (const [c, byKey] of terms) merged.set(c, new LoraMergedSource(parts(c)!, byKey, fp));
      return new LoraSet(specs, files, merged, fp);
    } catch (e) {
      for (const f of files) f.tensors.close();
      throw e;
    }
  }

  /** The part's weights with the LoRAs merged, or the base itself when no LoRA touches it. */
  weights(c: LoraComponent, base: TensorSource): TensorSource {
    const m = this.merged.get(c);
    return m && m.base === base ? m : base;
  }

  /** Whether any LoRA term changes part `c`. */
  touches(c: LoraComponent): boolean { return this.merged.has(c); }

  close(): void { for (const f of this.files) f.tensors.close(); }
}

/**
 * down must be [r, in(, kh, kw)] and up [out, r(, 1, 1)] for a weight [out, in(, kh, kw)], with the
 * weight's own layout: a Linear takes 2-D factors, a conv (1x1 included) 4-D ones, as PEFT builds them;
 * a conv-shaped LoRA on a Linear is a LoRA for another model (e.g. SD 1.x proj_in on SD 2.x).
 */
function checkShapes(file: LoraFile, m: LoraModule, weight: readonly number[], where: string): void {
  const down = file.tensors.shape(m.down);
  const up = file.tensors.shape(m.up);
  const [out, inF, ...kernel] = weight;
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
  const fail = (key: string, actual: readonly number[], expected: readonly number[]): never => {
    throw new FileFormatError(file.path, `shape [${actual.join(', ')}] does not fit ${where} (weight [${weight.join(', ')}]): expected [${expected.join(', ')}]; a LoRA for another base model?`, key);
  };
  if (out === undefined || inF === undefined) fail(m.down, down, weight);
  const wantDown = [m.rank, inF!, ...kernel];
  const wantUp = [out!, m.rank, ...kernel.map(() => 1)];
  if (!same(down, wantDown)) fail(m.down, down, wantDown);
  if (!same(up, wantUp)) fail(m.up, up, wantUp);
}

/** Files (resolved path, size, modification time) and scales, hashed. */
function fingerprint(specs: readonly LoraSpec[]): string {
  const h = crypto.createHash('sha256');
  for (const s of specs) {
    const p = path.resolve(s.path);
    const st = fs.statSync(p);
    h.update(`${p}:${st.size}:${st.mtimeMs}:${s.scale ?? 1};`);
  }
  return h.digest('hex').slice(0, 16);
}
