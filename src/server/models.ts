/**
 * Models under --models: discovery (diffusers folders, ControlNets, CLIP models, single-file
 * checkpoints, loose weights files) with their family, name resolution that never leaves the folder,
 * and an LRU of opened checkpoints within a memory budget (the compiled sessions stay loaded between
 * jobs, so the second job on a model skips the load).
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type Checkpoint, type LoraSpec } from '../index.js';
import type { Precision } from '../graph/quantize.js';
import { useTinyVae } from '../components/vae-tiny.js';
import { ControlNet, CLIPModel } from '../index.js';
import { releaseSessions } from '../graph/session.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { HttpError } from './http-error.js';

export type ModelKind = 'pipeline' | 'single-file' | 'controlnet' | 'clip' | 'image-encoder' | 'vae-tiny' | 'weights';
export interface ModelEntry { name: string; kind: ModelKind; family: string; bytes: number }

const readJson = (p: string): Record<string, unknown> | undefined => {
  try { return JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>; } catch { return undefined; }
};

function folderBytes(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, name), { throwIfNoEntry: false });
    if (st?.isDirectory()) n += folderBytes(path.join(dir, name));
    else if (st?.isFile()) n += st.size;
  }
  return n;
}

/** sd1 / sd2 / sdxl / ddpm from a diffusers pipeline folder's configs. */
function pipelineFamily(dir: string): string {
  const index = readJson(path.join(dir, 'model_index.json'));
  const cls = String(index?._class_name ?? '');
  const unet = readJson(path.join(dir, 'unet', 'config.json'));
  if (/XL/.test(cls) || unet?.addition_embed_type === 'text_time') return 'sdxl';
  if (cls === 'DDPMPipeline' || cls === 'DDIMPipeline' || unet?._class_name === 'UNet2DModel') return 'ddpm';
  // SD 2.x uses OpenCLIP (gelu), SD 1.x OpenAI CLIP (quick_gelu).
  const te = readJson(path.join(dir, 'text_encoder', 'config.json'));
  if (te?.hidden_act === 'gelu') return 'sd2';
  if (te?.hidden_act === 'quick_gelu') return 'sd1';
  if (unet?.cross_attention_dim === 1024) return 'sd2';
  if (unet?.cross_attention_dim === 768) return 'sd1';
  return 'unknown';
}

/** A single .safetensors file: an original-layout checkpoint (with its family) or loose weights. */
function fileEntry(file: string, name: string): ModelEntry | undefined {
  const bytes = fs.statSync(file).size;
  if (!/\.safetensors$/i.test(file)) return undefined;
  let keys: string[];
  try {
    const f = SafetensorsFile.open(file);
    try { keys = [...f.tensors.keys()]; } finally { f.close(); }
  } catch { return undefined; }
  const has = (prefix: string): boolean => keys.some((k) => k.startsWith(prefix));
  if (has('model.diffusion_model.')) {
    const family = has('conditioner.embedders.') ? 'sdxl' : has('cond_stage_model.model.') ? 'sd2' : has('cond_stage_model.transformer.') ? 'sd1' : 'unknown';
    return { name, kind: 'single-file', family, bytes };
  }
  return { name, kind: 'weights', family: 'unknown', bytes };
}

/** Every model under `root` (to depth 3), sorted by name; names use forward slashes. */
export function discoverModels(root: string): ModelEntry[] {
  const out: ModelEntry[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      const name = path.relative(root, p).split(path.sep).join('/');
      let st: fs.Stats;
      try { st = e.isSymbolicLink() ? fs.statSync(p) : (e as unknown as fs.Stats); } catch { continue; } // symlinks followed; dangling ones skipped
      if (st.isDirectory()) {
        const index = readJson(path.join(p, 'model_index.json'));
        const config = readJson(path.join(p, 'config.json'));
        if (index) out.push({ name, kind: 'pipeline', family: pipelineFamily(p), bytes: folderBytes(p) });
        else if (config?._class_name === 'ControlNetModel') out.push({ name, kind: 'controlnet', family: 'controlnet', bytes: folderBytes(p) });
        else if (config?.model_type === 'clip') out.push({ name, kind: 'clip', family: 'clip', bytes: folderBytes(p) });
        else if (config?.model_type === 'clip_vision_model') out.push({ name, kind: 'image-encoder', family: 'clip', bytes: folderBytes(p) });
        else if (config?._class_name === 'AutoencoderTiny') out.push({ name, kind: 'vae-tiny', family: 'taesd', bytes: folderBytes(p) });
        else if (config?._class_name === 'UNet2DModel') out.push({ name, kind: 'pipeline', family: 'ddpm', bytes: folderBytes(p) });
        else if (depth < 3) walk(p, depth + 1);
      } else if (st.isFile()) {
        const f = fileEntry(p, name);
        if (f) out.push(f);
      }
    }
  };
  walk(root, 1);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * `name` resolved inside `root`: a relative path with no `..`, no absolute path and no NUL (symlinks
 * the administrator put under --models are followed). `field` names the request field in errors.
 */
export function resolveInside(root: string, name: string, field: string): string {
  if (name.includes('\0') || path.isAbsolute(name) || /^[a-zA-Z]:/.test(name) || name.split(/[\\/]/).some((s) => s === '..')) {
    throw new HttpError(400, `${field}: ${JSON.stringify(name)} is not a name under the models folder (no absolute paths or "..")`);
  }
  const p = path.resolve(root, name);
  if (!p.startsWith(path.resolve(root) + path.sep)) throw new HttpError(400, `${field}: ${JSON.stringify(name)} leaves the models folder`);
  if (!fs.existsSync(p)) throw new HttpError(404, `${field}: no model or file named ${JSON.stringify(name)} under the models folder`);
  return p;
}

interface Cached<T> { value: T; bytes: number; used: number; key: string }

/**
 * Opened models by path, least recently used first out when the sum of their weights' sizes on disk
 * passes the budget (a float32 session holds about that much; half-precision files double, which the
 * budget's margin absorbs). Evicting releases the compiled sessions of that model.
 */
export class ModelCache {
  private readonly entries = new Map<string, Cached<unknown>>();
  private clock = 0;

  constructor(readonly root: string, readonly budgetBytes: number) {}

  list(): ModelEntry[] { return discoverModels(this.root); }

  /** A checkpoint with its LoRAs merged and its tiny VAE attached (each combination is its own entry). */
  checkpoint(name: string, field = 'model', o: { loras?: readonly LoraSpec[]; vaeTiny?: string; precision?: Precision } = {}): Checkpoint {
    const entry = this.entry(name, field, ['pipeline', 'single-file']);
    const loras = o.loras ?? [];
    const precision = o.precision ?? 'fp32';
    const key = `ck:${entry.p}${loras.length ? `|lora=${JSON.stringify(loras)}` : ''}${o.vaeTiny ? `|tiny=${o.vaeTiny}` : ''}${precision !== 'fp32' ? `|${precision}` : ''}`;
    return this.get(key, entry.bytes, () => {
      const ck = openCheckpoint(entry.p, { loras, precision });
      if (o.vaeTiny) useTinyVae(ck, o.vaeTiny, 'vaeTiny');
      return ck;
    });
  }

  /** The path of a model of one of `kinds` (vae-tiny, image-encoder, weights, ...), or a 4xx naming `field`. */
  path(name: string, field: string, kinds: ModelKind[]): string {
    return this.entry(name, field, kinds).p;
  }

  controlnet(name: string, field = 'controlnet'): ControlNet {
    const entry = this.entry(name, field, ['controlnet']);
    return this.get(`cn:${entry.p}`, entry.bytes, () => ControlNet.open(entry.p));
  }

  clip(name: string, field = 'clip'): CLIPModel {
    const entry = this.entry(name, field, ['clip']);
    return this.get(`clip:${entry.p}`, entry.bytes, () => CLIPModel.open(entry.p));
  }

  /** A loose weights file (aligner, attribute network) by its name under --models. */
  file(name: string, field: string): string {
    return this.entry(name, field, ['weights']).p;
  }

  /** Names of the models now loaded (most recent last). */
  loaded(): string[] { return [...this.entries.values()].sort((a, b) => a.used - b.used).map((e) => e.key); }

  private entry(name: string, field: string, kinds: ModelKind[]): { p: string; bytes: number } {
    const p = resolveInside(this.root, name, field);
    const found = discoverModels(this.root).find((m) => path.resolve(this.root, m.name) === path.resolve(this.root, name));
    if (!found || !kinds.includes(found.kind)) {
      throw new HttpError(404, `${field}: ${JSON.stringify(name)} is not a ${kinds.join(' or ')} model under the models folder (GET /api/models lists them)`);
    }
    return { p, bytes: found.bytes };
  }

  private get<T>(key: string, bytes: number, open: () => T): T {
    const hit = this.entries.get(key);
    if (hit) { hit.used = ++this.clock; return hit.value as T; }
    const value = open();
    this.entries.set(key, { value, bytes, used: ++this.clock, key });
    void this.evict(key);
    return value;
  }

  private async evict(keep: string): Promise<void> {
    let total = [...this.entries.values()].reduce((s, e) => s + e.bytes, 0);
    for (const e of [...this.entries.values()].sort((a, b) => a.used - b.used)) {
      if (total <= this.budgetBytes) break;
      if (e.key === keep) continue;
      this.entries.delete(e.key);
      total -= e.bytes;
      const p = e.key.slice(e.key.indexOf(':') + 1).split('|')[0]!;
      await releaseSessions((k) => k.startsWith(`${p}#`) || k.startsWith(p));
    }
  }
}
