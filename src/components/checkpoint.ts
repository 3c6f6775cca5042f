/**
 * Opening what users have on disk: a diffusers folder (`model_index.json` + component folders) or a
 * component folder on its own. Components load lazily, each once per process; a missing component
 * is reported with the folder it was expected in.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { releaseSessions } from '../graph/session.js';
import { CLIPImageProcessor } from '../io/clip-image-processor.js';
import { CLIPTokenizer } from '../io/clip-tokenizer.js';
import { Config, type Json } from '../io/config.js';
import { openComponentWeights, WeightsView, type TensorSource } from '../io/weights.js';
import { openOriginalCheckpoint, type OriginalCheckpointOptions } from '../io/original-checkpoint.js';
import { openSingleFileWithConfig } from './single-file-config.js';
import { LoraSet, type LoraSpec } from '../adapters/lora/lora-set.js';
import { checkPrecision, type Precision } from '../graph/quantize.js';
import type { LoraComponent } from '../adapters/lora/key-map.js';
import { autoencoderConfig } from '../models/autoencoder-kl.js';
import { clipTextConfig, clipVisionConfig } from '../models/clip.js';
import { unetConfig } from '../models/unet2d-condition.js';
import { unet2DConfig } from '../models/unet2d.js';
import { ImageEncoder } from './image-encoder.js';
import { TextEncoder } from './text-encoder.js';
import { UNet } from './unet.js';
import { VAE } from './vae.js';
import { PromptConditioner } from './prompt-conditioner.js';
import type { LatentAutoencoder } from './latent-autoencoder.js';

export type ComponentName = 'tokenizer' | 'text_encoder' | 'tokenizer_2' | 'text_encoder_2' | 'unet' | 'vae' | 'scheduler' | 'image_encoder' | 'feature_extractor';

/** Where a component's config and weights come from. */
export interface ComponentSource {
  config(): Config;
  weights(): TensorSource;
}

/** What a pipeline family adds beyond its components (model_index.json settings, a second tokenizer). */
export interface CheckpointFamilyOptions {
  tokenizer2?: () => CLIPTokenizer;
  /** StableDiffusionXLPipeline's force_zeros_for_empty_prompt: a missing negative prompt gives zero embeddings. */
  forceZerosForEmptyPrompt?: boolean;
}

/** The parts a LoRA can change (their memoized objects are rebuilt when LoRAs change). */
const LORA_PARTS: readonly LoraComponent[] = ['text_encoder', 'text_encoder_2', 'unet'];

export class Checkpoint {
  private readonly memo = new Map<string, unknown>();
  /** Things the user should know about how the checkpoint was read (inferred settings). */
  readonly warnings: string[] = [];

  private constructor(
    /** The path the user gave. */
    readonly path: string,
    private readonly resolve: (name: ComponentName) => ComponentSource | string | undefined,
    private readonly tokenizerLoader: () => CLIPTokenizer,
    /** The second tokenizer (SDXL) and model_index.json settings of the pipeline. */
    private readonly family: CheckpointFamilyOptions = {},
  ) {}

  /** A diffusers folder. (Single-file checkpoints: see openCheckpoint.) */
  static fromDiffusersFolder(dir: string): Checkpoint {
    const index = path.join(dir, 'model_index.json');
    const listed = fs.existsSync(index) ? Config.read(index) : undefined;
    const folder = (name: ComponentName): string | undefined => {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
      const entry = listed?.raw[name];
      const declared = Array.isArray(entry) && entry[0] !== null;
      if (declared) throw new FileFormatError(p, `model folder is missing the ${name} component that model_index.json lists`);
      return undefined;
    };
    const forceZeros = listed?.raw.force_zeros_for_empty_prompt;
    return new Checkpoint(dir, (name) => {
      const p = folder(name);
      if (!p) return undefined;
      return name === 'scheduler' || name === 'tokenizer' || name === 'tokenizer_2' || name === 'feature_extractor' ? p : {
        config: () => Config.read(path.join(p, 'config.json')),
        weights: () => openComponentWeights(p),
      };
    }, () => {
      const p = folder('tokenizer');
      if (!p) throw new FileFormatError(dir, 'model folder has no tokenizer/ component');
      return CLIPTokenizer.fromDir(p);
    }, {
      tokenizer2: () => {
        const p = folder('tokenizer_2');
        if (!p) throw new FileFormatError(dir, 'model folder has no tokenizer_2/ component (its text_encoder_2 needs one)');
        return CLIPTokenizer.fromDir(p);
      },
      forceZerosForEmptyPrompt: forceZeros === true,
    });
  }

  /** A checkpoint built from component sources (single-file layouts). */
  static fromSources(origin: string, sources: Partial<Record<ComponentName, ComponentSource>>, scheduler: Record<string, Json>, tokenizer: () => CLIPTokenizer, family: CheckpointFamilyOptions = {}): Checkpoint {
    const ck = new Checkpoint(origin, (name) => sources[name], tokenizer, family);
    ck.memo.set('scheduler', scheduler);
    return ck;
  }

  private loraSet: LoraSet | undefined;
  private precisionValue: Precision = 'fp32';

  /** The precision the UNet (with its ControlNets) and the VAE run at: fp32 (exact) or int8 (graph/quantize.ts). */
  get precision(): Precision { return this.precisionValue; }

  /** Switch precision; later calls build (and cache) graphs of that precision, sessions of the other stay until `release`. */
  setPrecision(p: Precision): void {
    checkPrecision(p, 'precision');
    if (p === this.precisionValue) return;
    this.precisionValue = p;
    for (const c of ['unet', 'vae', 'conditioner']) this.memo.delete(c);
  }

  /** The LoRAs merged into the text encoder(s) and the UNet (empty: the base model). */
  get loras(): readonly LoraSpec[] { return this.loraSet?.specs ?? []; }

  /**
   * Merge LoRAs into the text encoder(s) and the UNet, replacing any applied before. Every file is
   * checked against the model first; on an error nothing changes. Weights are merged per tensor when a
   * graph is built (no second copy of the model); sessions compiled before stay cached under the old
   * weights' id until `release` (`setLoras` does both).
   */
  applyLoras(specs: readonly LoraSpec[]): void {
    const next = specs.length === 0 ? undefined : LoraSet.load(specs, (c) => (this.has(c as ComponentName) ? this.baseWeights(c) : undefined), this.path);
    this.loraSet?.close();
    this.loraSet = next;
    for (const c of [...LORA_PARTS, 'conditioner']) this.memo.delete(c);
  }

  /** applyLoras, then free the sessions compiled with the previous weights. */
  async setLoras(specs: readonly LoraSpec[]): Promise<void> {
    this.applyLoras(specs);
    for (const c of LORA_PARTS) await this.release(c as ComponentName);
  }

  /** Back to the base weights, bit for bit (the base files were never modified). */
  async unloadLoras(): Promise<void> { await this.setLoras([]); }

  /** A part's weights as stored, opened once. */
  private baseWeights(name: LoraComponent): TensorSource {
    return this.once(`weights:${name}`, () => this.source(name as ComponentName).weights());
  }

  /** A part's weights with the LoRAs merged, and the id its sessions are cached under. */
  private partWeights(name: LoraComponent): { weights: TensorSource; id: string } {
    const base = this.baseWeights(name);
    const weights = this.loraSet?.weights(name, base) ?? base;
    return { weights, id: `${this.path}#${name}${this.configTag(name)}${weights !== base ? `:lora-${this.loraSet!.fingerprint}` : ''}` };
  }

  /**
   * Sessions are cached per process by id: the same file opened with other configs (a single file with other
   * --sd-version / head counts / --config) builds other graphs, so the id carries the config's fingerprint.
   */
  private configTag(name: ComponentName): string {
    return `:cfg-${crypto.createHash('sha1').update(JSON.stringify(this.source(name).config().raw)).digest('hex').slice(0, 12)}`;
  }

  private once<T>(key: string, load: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, load());
    return this.memo.get(key) as T;
  }

  private source(name: ComponentName): ComponentSource {
    const s = this.resolve(name);
    if (!s || typeof s === 'string') throw new FileFormatError(path.join(this.path, name), `model has no ${name} component`);
    return s;
  }

  /** Free the compiled sessions of one component (each holds a copy of its weights); they rebuild on next use. */
  async release(component: ComponentName): Promise<void> {
    await releaseSessions((k) => k.includes(`${this.path}#${component}:`) || k.endsWith(`${this.path}#${component}`));
  }

  /** A pixel-space unconditional model (UNet2DModel, no VAE, no text encoder). */
  isPixelSpace(): boolean { return !this.unet().conditional; }

  has(name: ComponentName): boolean {
    try { return this.resolve(name) !== undefined; } catch { return false; }
  }

  tokenizer(): CLIPTokenizer { return this.once('tokenizer', this.tokenizerLoader); }

  textEncoder(): TextEncoder {
    return this.once('text_encoder', () => {
      const s = this.source('text_encoder');
      const { weights, id } = this.partWeights('text_encoder');
      return new TextEncoder(this.tokenizer(), clipTextConfig(s.config()), new WeightsView(weights), id);
    });
  }

  tokenizer2(): CLIPTokenizer {
    return this.once('tokenizer_2', () => {
      if (!this.family.tokenizer2) throw new FileFormatError(path.join(this.path, 'tokenizer_2'), 'model has no tokenizer_2 component');
      return this.family.tokenizer2();
    });
  }

  /** SDXL's second text encoder (CLIPTextModelWithProjection). */
  textEncoder2(): TextEncoder {
    return this.once('text_encoder_2', () => {
      const s = this.source('text_encoder_2');
      const { weights, id } = this.partWeights('text_encoder_2');
      const vb = new WeightsView(weights);
      return new TextEncoder(this.tokenizer2(), clipTextConfig(s.config()), vb, id, vb.has('text_projection.weight') ? vb.pp('text_projection') : undefined);
    });
  }

  /** Prompts -> UNet conditioning for this model's family (one encoder, or SDXL's two with pooled output). */
  conditioner(): PromptConditioner {
    return this.once('conditioner', () => {
      const unet = this.unet();
      const dual = this.has('text_encoder_2');
      const encoders = dual ? [this.textEncoder(), this.textEncoder2()] : [this.textEncoder()];
      return new PromptConditioner(encoders, dual, this.family.forceZerosForEmptyPrompt ?? false, unet.config.addition, unet.config.crossAttentionDim, path.join(this.path, 'unet'));
    });
  }

  unet(): UNet {
    return this.once('unet', () => {
      const s = this.source('unet');
      const c = s.config();
      const arch = c.raw._class_name === 'UNet2DModel' ? { kind: 'pixel' as const, unet: unet2DConfig(c) } : { kind: 'conditional' as const, unet: unetConfig(c) };
      const { weights, id } = this.partWeights('unet');
      return new UNet(arch, new WeightsView(weights), id, this.precision);
    });
  }

  vae(): VAE {
    return this.once('vae', () => {
      const s = this.source('vae');
      return new VAE(autoencoderConfig(s.config()), new WeightsView(s.weights()), `${this.path}#vae${this.configTag('vae')}`, this.precision);
    });
  }

  private replacementAutoencoder: LatentAutoencoder | undefined;

  /** Encode and decode images with `ae` (the tiny VAE) instead of the VAE; it must share the VAE's latent space. */
  useAutoencoder(ae: LatentAutoencoder | undefined): void { this.replacementAutoencoder = ae; }

  /** The autoencoder pipelines encode and decode images with: the one given to useAutoencoder, else the VAE. */
  autoencoder(): LatentAutoencoder { return this.replacementAutoencoder ?? this.vae(); }

  /** The raw scheduler_config.json object. */
  schedulerConfig(): { file: string; raw: Record<string, Json> } {
    const memo = this.memo.get('scheduler') as Record<string, Json> | undefined;
    if (memo) return { file: this.path, raw: memo };
    const s = this.resolve('scheduler');
    if (typeof s !== 'string') throw new FileFormatError(path.join(this.path, 'scheduler'), 'model has no scheduler/ component');
    const c = Config.read(path.join(s, 'scheduler_config.json'));
    return { file: c.file, raw: c.raw };
  }

  imageEncoder(): ImageEncoder {
    return this.once('image_encoder', () => {
      const s = this.source('image_encoder');
      const fe = this.resolve('feature_extractor');
      const processor = typeof fe === 'string' ? CLIPImageProcessor.fromFile(fe) : new CLIPImageProcessor();
      const vb = new WeightsView(s.weights());
      return new ImageEncoder(processor, clipVisionConfig(s.config()), vb, vb.has('visual_projection.weight') ? vb.pp('visual_projection') : null, `${this.path}#image_encoder`);
    });
  }
}

/**
 * Open a model path: a diffusers folder, or a single-file SD 1.x / 2.x checkpoint in the original
 * layout (configs inferred from tensor shapes, `opts` override; the bundled CLIP vocabulary stands in
 * for the tokenizer files such a checkpoint lacks).
 */
export function openCheckpoint(p: string, opts: OriginalCheckpointOptions & { loras?: readonly LoraSpec[]; precision?: Precision } = {}): Checkpoint {
  const ck = openCheckpointFiles(p, opts);
  if (opts.precision) ck.setPrecision(opts.precision);
  if (opts.loras?.length) ck.applyLoras(opts.loras);
  return ck;
}

function openCheckpointFiles(p: string, opts: OriginalCheckpointOptions): Checkpoint {
  if (!fs.existsSync(p)) throw new InputError(`model path not found: ${p}`);
  if (fs.statSync(p).isDirectory()) {
    if (opts.config !== undefined) throw new InputError(`--config pairs a single checkpoint file with a diffusers folder's configs, but the model ${p} is a folder`);
    return Checkpoint.fromDiffusersFolder(p);
  }
  if (opts.config !== undefined) return openSingleFileWithConfig(p, opts.config, opts);
  const ck = openOriginalCheckpoint(p, opts);
  const sources: Partial<Record<ComponentName, ComponentSource>> = { unet: ck.unet };
  if (ck.vae) sources.vae = ck.vae;
  if (ck.text_encoder) sources.text_encoder = ck.text_encoder;
  if (ck.text_encoder_2) sources.text_encoder_2 = ck.text_encoder_2;
  // SD 2.x (OpenCLIP) pads with "!" (id 0), SD 1.x with the end-of-text token; SDXL's first tokenizer as SD 1.x, its second as SD 2.x.
  const padToken = ck.version === 2 ? '!' : '<|endoftext|>';
  const family = ck.version === 'xl' ? { tokenizer2: () => CLIPTokenizer.bundled({ padToken: '!' }), forceZerosForEmptyPrompt: true } : {};
  const checkpoint = Checkpoint.fromSources(p, sources, ck.scheduler.raw, () => CLIPTokenizer.bundled({ padToken }), family);
  checkpoint.warnings.push(...ck.warnings);
  return checkpoint;
}
