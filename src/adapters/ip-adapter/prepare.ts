/**
 * From (adapter, image, scale) to what the UNet graph needs, as diffusers v0.30.3's
 * `prepare_ip_adapter_image_embeds` / `encode_image` make it:
 *   base: image_embeds of the CLIP image encoder; unconditional branch zeros_like(image_embeds);
 *   plus: hidden_states[-2] of the encoder; unconditional branch hidden_states[-2] of the encoder run on
 *         zeros_like(pixel_values) (all-zero *normalised* pixels, not a black image).
 * Both branches go through the adapter's projection together ([uncond; cond]).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../../components/checkpoint.js';
import { ImageEncoder } from '../../components/image-encoder.js';
import type { UNet, UNetVariant } from '../../components/unet.js';
import { FileFormatError, InputError } from '../../errors.js';
import { lowMemory, releaseSessions, type Feed } from '../../graph/session.js';
import { CLIPImageProcessor } from '../../io/clip-image-processor.js';
import { Config } from '../../io/config.js';
import type { RGBImage } from '../../io/image.js';
import { openComponentWeights, WeightsView } from '../../io/weights.js';
import { clipModelConfig } from '../../components/clip-model.js';
import { clipVisionConfig, type CLIPVisionConfig } from '../../models/clip.js';
import { concatRows, rows, type Tensor } from '../../tensor.js';
import { checkAdapterFits, crossAttentionOrder, ipAdapterFeeds, ipAdapterVariant, type IPAdapterTokens, type IPRow } from './decoupled-attention.js';
import { IPAdapter } from './ip-adapter-file.js';
import { projectImageEmbeds } from './image-projection.js';

/** One adapter of a run: the adapter (or its file), its image prompt and its scale. */
export interface IPAdapterInput {
  readonly adapter: IPAdapter | string;
  readonly image: RGBImage;
  /** diffusers' set_ip_adapter_scale; default 1. */
  readonly scale?: number;
}

export interface PreparedIPAdapter extends IPAdapterTokens {
  readonly adapter: IPAdapter;
}

/** The checkpoint's feature_extractor/ if it has one (diffusers folders). */
function modelImageProcessor(ck: Checkpoint): CLIPImageProcessor | undefined {
  if (!ck.has('feature_extractor')) return undefined;
  const dir = path.join(ck.path, 'feature_extractor');
  return fs.existsSync(dir) ? CLIPImageProcessor.fromFile(dir) : undefined;
}

/**
 * A CLIPVisionModelWithProjection folder given on its own (`--image-encoder DIR`, as diffusers'
 * `image_encoder_folder`). Images are preprocessed by the model's feature_extractor when it has one,
 * otherwise as diffusers' load_ip_adapter does: CLIPImageProcessor(size = crop_size = the encoder's image_size).
 */
export function openImageEncoder(dir: string, ck?: Checkpoint): ImageEncoder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError(`--image-encoder must be a folder with config.json and model.safetensors (a CLIPVisionModelWithProjection or CLIPModel), got ${dir}`);
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile)) throw new FileFormatError(configFile, 'no config.json: not a CLIP image encoder folder');
  const id = `image-encoder:${path.resolve(dir)}`;
  let enc = encoderFolders.get(id);
  if (!enc) {
    const raw = Config.read(configFile);
    // A whole CLIPModel folder serves too, as transformers' CLIPVisionModelWithProjection.from_pretrained reads
    // one: its vision tower and visual_projection carry the same weight names.
    const config = raw.raw.vision_config !== undefined || raw.raw.model_type === 'clip' ? clipModelConfig(raw).vision : clipVisionConfig(raw);
    enc = { config, weights: new WeightsView(openComponentWeights(dir)) };
    encoderFolders.set(id, enc);
  }
  const size = enc.config.imageSize;
  const processor = (ck && modelImageProcessor(ck)) ?? new CLIPImageProcessor({ size: { shortest_edge: size }, crop_size: { height: size, width: size } });
  const vb = enc.weights;
  return new ImageEncoder(processor, enc.config, vb, vb.has('visual_projection.weight') ? vb.pp('visual_projection') : null, id);
}

/** Encoder folders opened in this process (one open weights file each, however many runs use them). */
const encoderFolders = new Map<string, { config: CLIPVisionConfig; weights: WeightsView }>();

/** The model's image_encoder/, or a one-line error saying how to give one. */
export function modelImageEncoder(ck: Checkpoint): ImageEncoder {
  if (!ck.has('image_encoder')) {
    throw new InputError(`the model ${ck.path} has no image_encoder/ folder, which IP-Adapter needs: pass --image-encoder DIR (the CLIP image encoder the adapter was trained with, e.g. h94/IP-Adapter models/image_encoder)`);
  }
  return ck.imageEncoder();
}

/** Image tokens [1, N, C] of one adapter for one image, for both guidance branches. */
export async function ipAdapterTokens(adapter: IPAdapter, encoder: ImageEncoder, image: RGBImage): Promise<{ cond: Tensor; uncond: Tensor }> {
  const pixels = encoder.processor.preprocess([image]);
  const enc = await encoder.encodePixels(pixels);
  let cond: Tensor, uncond: Tensor;
  if (adapter.readsHiddenStates) {
    cond = enc.penultimateHiddenState;
    uncond = (await encoder.encodePixels({ shape: pixels.shape, data: new Float32Array(pixels.data.length) })).penultimateHiddenState;
  } else {
    cond = enc.imageEmbeds;
    uncond = { shape: cond.shape, data: new Float32Array(cond.data.length) };
  }
  const width = cond.shape[cond.shape.length - 1]!;
  const want = adapter.projection.imageEmbedDim;
  if (width !== want) {
    const what = adapter.readsHiddenStates ? 'hidden states' : 'image_embeds';
    throw new FileFormatError(adapter.file, `IP-Adapter for another image encoder: it reads ${want}-wide ${what} but the image encoder (${encoder.id}) gives ${width}-wide ones; pass the matching --image-encoder`, 'image_proj');
  }
  const tokens = await projectImageEmbeds(adapter, concatRows([uncond, cond]));
  return { uncond: rows(tokens, 0), cond: rows(tokens, 1) };
}

/** Encode and project every adapter's image (adapters with scale 0 are left out: diffusers skips them). */
export async function prepareIPAdapters(ck: Checkpoint, inputs: readonly IPAdapterInput[], o: { imageEncoder?: ImageEncoder | string } = {}): Promise<PreparedIPAdapter[]> {
  const out: PreparedIPAdapter[] = [];
  if (inputs.length === 0) return out;
  const unet = ck.unet();
  if (!unet.conditional) throw new InputError('IP-Adapter needs a text-conditioned model (Stable Diffusion), not a pixel-space UNet2DModel');
  const order = crossAttentionOrder(unet);
  let encoder: ImageEncoder | undefined;
  for (const input of inputs) {
    const scale = input.scale ?? 1;
    if (!Number.isFinite(scale)) throw new InputError(`--ip-scale must be a number, got ${scale}`);
    const adapter = typeof input.adapter === 'string' ? IPAdapter.open(input.adapter) : input.adapter;
    checkAdapterFits(adapter, unet, order);
    if (scale === 0) continue;
    encoder ??= typeof o.imageEncoder === 'string' ? openImageEncoder(o.imageEncoder, ck) : o.imageEncoder ?? modelImageEncoder(ck);
    out.push({ adapter, scale, ...(await ipAdapterTokens(adapter, encoder, input.image)) });
  }
  return out;
}

/** What a sampling loop needs: the UNet variant and, per call, the feeds for a row layout. */
export interface IPAdapterConditioning {
  readonly variant: UNetVariant;
  feeds(rowsOf: readonly IPRow[]): Record<string, Feed>;
}

export function ipAdapterConditioning(unet: UNet, prepared: readonly PreparedIPAdapter[]): IPAdapterConditioning | undefined {
  const variant = ipAdapterVariant(unet, prepared.map((p) => ({ adapter: p.adapter, numTokens: p.cond.shape[1]! })));
  if (!variant) return undefined;
  return { variant, feeds: (rowsOf) => ipAdapterFeeds(prepared, rowsOf) };
}

/** Prepare the adapters of a run (none: undefined); in low-memory mode the image encoder's sessions are freed after. */
export async function ipAdapterSetup(ck: Checkpoint, inputs: readonly IPAdapterInput[] | undefined, imageEncoder?: ImageEncoder | string): Promise<IPAdapterConditioning | undefined> {
  if (!inputs?.length) return undefined;
  const prepared = await prepareIPAdapters(ck, inputs, { imageEncoder });
  if (lowMemory()) await releaseSessions((key) => key.startsWith('clip-vision:') || key.includes(':image_proj:'));
  return ipAdapterConditioning(ck.unet(), prepared);
}

/** The rows of a text-to-image UNet call: [uncond x K, cond x K] with guidance, [cond x K] without. */
export function guidanceRows(cfg: boolean, k: number): IPRow[] {
  return [...Array<IPRow>(cfg ? k : 0).fill('uncond'), ...Array<IPRow>(k).fill('cond')];
}
