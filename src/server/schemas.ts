/**
 * The request schemas of every job kind: the single definition of each parameter's name, type, range,
 * default and help text. The HTTP server validates with them, /openapi.json is generated from them and
 * the web form is built from them. Names and defaults are the CLI's (commander's camelCase option
 * names; test/server-schemas.test.ts checks them against the CLI's flags).
 */
import { Type, type Static } from 'typebox';
import { FUSIONS, GUIDANCE_MODES, METHOD_NAMES } from '../index.js';
import { NOISE_KINDS } from '../noise/gaussian.js';
import { SCHEDULERS } from '../schedulers/index.js';
import { TIMESTEP_SPACINGS } from '../schedulers/scheduler-config.js';

const literals = <T extends string>(values: readonly T[], o: { description: string; default?: T }) => Type.Enum([...values], o);

/** A model under --models, by the name GET /api/models lists (a path relative to --models). */
export const ModelName = Type.String({ minLength: 1, maxLength: 512, description: 'a model under --models, by its name in GET /api/models' });
/** An uploaded image: an id from POST /api/uploads, or an inline data: URL. */
export const ImageRef = Type.String({
  minLength: 1,
  description: 'an image: an upload id from POST /api/uploads, or a data: URL (base64 PNG, JPEG or WebP)',
});
/** A weights file under --models (aligner, attribute network), by its path relative to --models. */
const FileName = (description: string) => Type.String({ minLength: 1, maxLength: 512, description });
const Seed = Type.Union([Type.Integer(), Type.String({ pattern: '^-?\\d+$' })], {
  description: 'random seed, as the CLI\'s --seed (an integer, or a string of digits for seeds beyond 2^53; default: random)',
});
const Size = (what: string) => Type.Integer({ minimum: 8, maximum: 4096, description: `image ${what} in pixels (multiple of the VAE factor; default: the model's native size)` });
const Steps = (description: string, dflt: number) => Type.Integer({ minimum: 1, maximum: 1000, default: dflt, description });

/** LoRAs merged into the model when it is opened (every kind that samples with it). */
const adapters = {
  lora: Type.Array(Type.String({ minLength: 1, maxLength: 600, description: 'NAME[:SCALE]' }), {
    default: [], maxItems: 16, description: 'LoRA files under --models with their scale (NAME[:SCALE], default scale 1); the terms add up',
  }),
};
/** SDXL's micro-conditioning (other families ignore it). */
const micro = {
  originalSize: Type.Optional(Type.String({ pattern: '^\\d+[xX]\\d+$', description: 'SDXL micro-conditioning original_size, WIDTHxHEIGHT (default: the image size)' })),
  cropTopLeft: Type.Optional(Type.String({ pattern: '^\\d+,\\d+$', description: 'SDXL micro-conditioning crops_coords_top_left, TOP,LEFT (default: 0,0)' })),
  targetSize: Type.Optional(Type.String({ pattern: '^\\d+[xX]\\d+$', description: 'SDXL micro-conditioning target_size, WIDTHxHEIGHT (default: the image size)' })),
};

/** Output options every sampling job shares. */
const outputs = {
  saveLatents: Type.Boolean({ default: false, description: 'also write the final latents (latents.safetensors, key "latents")' }),
};

/** The sampling parameters of generate, vary and fuse (the CLI's addSamplingFlags). */
const sampling = {
  model: ModelName,
  negativePrompt: Type.Optional(Type.String({ maxLength: 4000, description: 'negative prompt (the unconditional branch of guidance)' })),
  steps: Steps('denoising steps', 50),
  guidance: Type.Number({ default: 7.5, description: 'classifier-free guidance scale (<= 1: no unconditional branch)' }),
  width: Type.Optional(Size('width')),
  height: Type.Optional(Size('height')),
  numImages: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'images to generate' }),
  seed: Type.Optional(Seed),
  noise: literals(NOISE_KINDS, { default: 'torch', description: 'initial-noise generator: torch (bit-exact torch.randn on CPU, as diffusers) or native' }),
  scheduler: Type.Optional(literals(SCHEDULERS, { description: 'sampler (default: the class the model\'s scheduler_config.json names, as diffusers loads it; vary and fuse sample with ddim)' })),
  timestepSpacing: Type.Optional(literals(TIMESTEP_SPACINGS, { description: 'override the scheduler config\'s timestep_spacing' })),
  eta: Type.Number({ minimum: 0, default: 0, description: 'DDIM eta (0: deterministic)' }),
  controlnet: Type.Array(ModelName, { default: [], maxItems: 8, description: 'ControlNets under --models (paired with controlImage by position)' }),
  controlImage: Type.Array(ImageRef, { default: [], maxItems: 8, description: 'condition image for the ControlNet at the same position (depth map, edges, ...)' }),
  controlScale: Type.Array(Type.Number(), { default: [], maxItems: 8, description: 'conditioning scale of the ControlNet at the same position (default 1)' }),
  vaeTiny: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'a tiny VAE (TAESD folder) under --models: decode (and encode references) with it instead of the model\'s VAE' })),
  prompt2: Type.Optional(Type.String({ maxLength: 4000, description: 'SDXL: prompt for the second text encoder (default: prompt)' })),
  negativePrompt2: Type.Optional(Type.String({ maxLength: 4000, description: 'SDXL: negative prompt for the second text encoder (default: negativePrompt)' })),
  ...micro,
  ...adapters,
  ...outputs,
};

/** IP-Adapters (generate and vary). */
const ipAdapters = {
  ipAdapter: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { default: [], maxItems: 8, description: 'IP-Adapter weights (.safetensors) under --models, paired with ipImage by position' }),
  ipImage: Type.Array(ImageRef, { default: [], maxItems: 8, description: 'image prompt for the IP-Adapter at the same position' }),
  ipScale: Type.Array(Type.Number(), { default: [], maxItems: 8, description: 'scale of the IP-Adapter at the same position (default 1; 0 switches it off)' }),
  imageEncoder: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'CLIP image encoder folder under --models for the IP-Adapters (default: the model\'s image_encoder/)' })),
};
const previewEvery = Type.Optional(Type.Integer({ minimum: 1, description: 'every n steps send a preview of the predicted final image (tiny VAE with vaeTiny, else a latent-size linear approximation) in the job\'s progress events' }));

/** Parameters of the h-space commands (inject, edit). */
const hspace = {
  model: ModelName,
  prompt: Type.Optional(Type.String({ maxLength: 4000, description: 'text conditioning for Stable Diffusion models (inversion and generation; default "")' })),
  steps: Steps('DDIM steps (inversion and generation)', 50),
  seed: Type.Optional(Seed),
  noise: literals(NOISE_KINDS, { default: 'torch', description: 'noise generator: torch or native' }),
  vaeTiny: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'a tiny VAE (TAESD folder) under --models: encode and decode with it instead of the model\'s VAE' })),
  ...adapters,
  ...outputs,
};

const strict = { additionalProperties: false } as const;

export const GenerateRequest = Type.Object({
  ...sampling,
  prompt: Type.Optional(Type.String({ maxLength: 4000, description: 'the prompt (required for text-conditioned models)' })),
  clipSkip: Type.Optional(Type.Integer({ minimum: 0, description: 'text encoder layers to skip (diffusers clip_skip)' })),
  previewEvery,
  ...ipAdapters,
}, { ...strict, description: 'text-to-image with classifier-free guidance (or unconditional sampling of a pixel-space DDPM model)' });

export const VaryRequest = Type.Object({
  ...sampling,
  image: ImageRef,
  prompt: Type.Optional(Type.String({ maxLength: 4000, description: 'text prompt (default: the inversion prompt)' })),
  inversionPrompt: Type.Optional(Type.String({ maxLength: 4000, description: 'caption used to invert the reference ("" for cross-prompt generation; default: the prompt)' })),
  method: literals(METHOD_NAMES, { default: 'indetail-ip', description: `image-prompt method: ${METHOD_NAMES.join(', ')}` }),
  guidanceMode: Type.Optional(literals(GUIDANCE_MODES, { description: 'conflict-free (reference only in the conditional branch; default for indetail-ip) or conflicting (both branches; default for the baselines)' })),
  stratifiedSteps: Type.Optional(Type.Integer({ minimum: 0, description: 'InDetail-IP: steps with Stratified Attention (default 10 of 50, scaled to steps)' })),
  lambdaP: Type.Number({ minimum: 0, default: 1, description: 'InDetail-IP: weight of the image-prompt attention (λP)' }),
  lambdaG: Type.Number({ minimum: 0, default: 1, description: 'InDetail-IP: weight of the generated image\'s own attention (λG)' }),
  tAlign: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'kv-concat (RIVAL): reference-only K/V above this timestep' })),
  startStep: Type.Optional(Type.Integer({ minimum: 0, description: 'kv-replace (MasaCtrl): first step that replaces K/V' })),
  startLayer: Type.Optional(Type.Integer({ minimum: 0, description: 'kv-replace (MasaCtrl): first self-attention layer (forward order) that replaces K/V' })),
  controlUncondSteps: Type.Optional(Type.Integer({ minimum: 0, description: 'with controlnet: first steps whose unconditional branch gets no ControlNet residuals (default 10 of 50, scaled)' })),
  previewEvery,
  ...ipAdapters,
}, { ...strict, description: 'generate from a reference image: image variation (prompt = a caption of it) or cross-prompt generation (inversionPrompt "")' });

export const InvertRequest = Type.Object({
  model: ModelName,
  image: ImageRef,
  prompt: Type.String({ maxLength: 4000, default: '', description: 'inversion prompt (a caption of the image, or "")' }),
  steps: Steps('inversion steps', 50),
  width: Type.Optional(Size('width (resize first)')),
  height: Type.Optional(Size('height (resize first)')),
  prompt2: Type.Optional(Type.String({ maxLength: 4000, description: 'SDXL: inversion prompt for the second text encoder (default: prompt)' })),
  scheduler: Type.Optional(literals(['ddim'], { description: 'inversion is DDIM inversion (DDIMInverseScheduler): ddim only' })),
  vaeTiny: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'a tiny VAE (TAESD folder) under --models: encode the image with it instead of the model\'s VAE' })),
  ...micro,
  ...adapters,
}, { ...strict, description: 'DDIM inversion of an image: writes the chain z_0 .. z_N (chain.safetensors, key "chain", [N+1, 1, C, h, w])' });

export const InjectRequest = Type.Object({
  ...hspace,
  image: ImageRef,
  content: ImageRef,
  tEdit: Type.Integer({ minimum: 0, maximum: 1000, default: 400, description: 'inject at timesteps t >= tEdit' }),
  gamma: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'slerp weight γ of the content h (0: none, 1: all; default 0.5)' })),
  gammaRamp: Type.Optional(Type.Tuple([Type.Number(), Type.Number()], { description: 'γ ramped linearly from a (first injected step) to b (last), as [a, b]' })),
  omega: Type.Number({ default: 0, description: 'style calibration strength ω (0: off)' }),
  mask: Type.Optional(ImageRef),
  tNoise: Type.Integer({ minimum: 0, maximum: 1000, default: 200, description: 'eta 0 above this timestep, 1 at and below' }),
  dtLambda: Type.Number({ minimum: 0, default: 0.9985, description: 'scale of the direction term for t >= 950 while injecting' }),
}, { ...strict, description: 'InjectFusion: inject the content image\'s h-space into the original image\'s generative process' });

export const EditRequest = Type.Object({
  ...hspace,
  image: ImageRef,
  attribute: FileName('attribute network weights (DeltaBlock .safetensors) under --models'),
  strength: Type.Number({ default: 1, description: 'edit strength c in h\' = h + c dh' }),
  tEdit: Type.Integer({ minimum: 0, maximum: 1000, default: 500, description: 'edit at timesteps t >= tEdit' }),
  tBoost: Type.Integer({ minimum: 0, maximum: 1000, default: 200, description: 'stochastic (eta 1) below this timestep' }),
}, { ...strict, description: 'Asyrp: edit an image with an attribute network (DeltaBlock) in h-space' });

export const FuseRequest = Type.Object({
  ...sampling,
  aligner: FileName('aligner weights from train-aligner, under --models'),
  image: ImageRef,
  prompt: Type.String({ minLength: 0, maxLength: 4000, description: 'the prompt' }),
  fusion: literals(FUSIONS, { default: 'concat', description: `how image and text tokens combine: ${FUSIONS.join(', ')}` }),
  pnoSteps: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'Prompt-Noise Optimization iterations (0: off; the paper uses 10-50)' }),
  pnoLr: Type.Number({ minimum: 0, default: 1e-2, description: 'Adam learning rate of PNO' }),
  clip: Type.Optional(ModelName),
  checkpointing: Type.Boolean({ default: true, description: 'PNO: recompute each UNet call instead of keeping every activation (false: faster, more memory)' }),
}, { ...strict, description: 'Visual Concept Fusion: generate from a prompt fused with a reference image through a trained aligner' });

export const JOB_SCHEMAS = {
  generate: GenerateRequest,
  vary: VaryRequest,
  invert: InvertRequest,
  inject: InjectRequest,
  edit: EditRequest,
  fuse: FuseRequest,
} as const;
export type JobKind = keyof typeof JOB_SCHEMAS;
export const JOB_KINDS = Object.keys(JOB_SCHEMAS) as JobKind[];

export type GenerateParams = Static<typeof GenerateRequest>;
export type VaryParams = Static<typeof VaryRequest>;
export type InvertParams = Static<typeof InvertRequest>;
export type InjectParams = Static<typeof InjectRequest>;
export type EditParams = Static<typeof EditRequest>;
export type FuseParams = Static<typeof FuseRequest>;
export interface JobParamsByKind {
  generate: GenerateParams; vary: VaryParams; invert: InvertParams; inject: InjectParams; edit: EditParams; fuse: FuseParams;
}
/** Which parameters hold images (uploads), per kind: they are stored once under --data/uploads. */
export const IMAGE_FIELDS: Record<JobKind, readonly string[]> = {
  generate: ['controlImage', 'ipImage'], vary: ['image', 'controlImage', 'ipImage'], invert: ['image'], inject: ['image', 'content', 'mask'], edit: ['image'], fuse: ['image', 'controlImage'],
};

// ---- Responses ----

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const Progress = Type.Object({
  stage: Type.String({ description: 'load, encode, invert, denoise, decode, ...' }),
  step: Type.Integer(),
  total: Type.Integer(),
  detail: Type.Optional(Type.String()),
  etaSeconds: Type.Optional(Type.Number({ description: 'estimated seconds left in this stage' })),
});

export const JobRecord = Type.Object({
  id: Type.String(),
  kind: literals(JOB_KINDS, { description: 'job kind' }),
  status: literals(JOB_STATUSES, { description: 'job status' }),
  params: Type.Record(Type.String(), Type.Unknown(), { description: 'the validated request with defaults filled in (uploads by id)' }),
  seed: Type.Optional(Type.String({ description: 'the seed used (re-run exactly with it)' })),
  createdAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  finishedAt: Type.Optional(Type.String()),
  timings: Type.Optional(Type.Object({ queueMs: Type.Optional(Type.Number()), runMs: Type.Optional(Type.Number()) })),
  files: Type.Array(Type.String(), { description: 'result files, GET /api/jobs/{id}/files/{name}' }),
  error: Type.Optional(Type.String()),
  attempts: Type.Integer(),
  progress: Type.Optional(Progress),
  versions: Type.Optional(Type.Record(Type.String(), Type.String())),
  worker: Type.Optional(Type.String()),
  warnings: Type.Optional(Type.Array(Type.String())),
  errorType: Type.Optional(Type.Enum(['input', 'internal', 'timeout'], { description: 'input: the request was at fault (a 4xx for synchronous calls)' })),
}, { additionalProperties: true });
export type JobRecordT = Static<typeof JobRecord>;

export const ModelInfo = Type.Object({
  name: Type.String({ description: 'the name jobs use (path relative to --models)' }),
  kind: literals(['pipeline', 'single-file', 'controlnet', 'clip', 'image-encoder', 'vae-tiny', 'weights'] as const, { description: 'what the entry is' }),
  family: Type.String({ description: 'sd1, sd2, sdxl, ddpm, controlnet, clip or unknown' }),
  bytes: Type.Integer(),
});

export const ErrorResponse = Type.Object({ error: Type.String(), statusCode: Type.Integer() });
export const UploadResponse = Type.Object({ id: Type.String(), width: Type.Integer(), height: Type.Integer(), format: Type.String() });

// ---- The AUTOMATIC1111-compatible subset ----

const a1111Common = {
  prompt: Type.String({ default: '', description: 'the prompt' }),
  negative_prompt: Type.String({ default: '', description: 'negative prompt' }),
  steps: Type.Integer({ minimum: 1, maximum: 1000, default: 20, description: 'sampling steps' }),
  cfg_scale: Type.Number({ default: 7, description: 'classifier-free guidance scale' }),
  width: Type.Integer({ minimum: 8, maximum: 4096, default: 512, description: 'width' }),
  height: Type.Integer({ minimum: 8, maximum: 4096, default: 512, description: 'height' }),
  seed: Type.Integer({ default: -1, description: 'seed (-1: random); the same as the CLI\'s --seed' }),
  sampler_name: Type.String({ default: 'DDIM', description: 'DDIM (other A1111 samplers map to the schedulers visprompt has)' }),
  scheduler: Type.Optional(Type.String()),
  batch_size: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  n_iter: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  eta: Type.Optional(Type.Number({ minimum: 0 })),
  clip_skip: Type.Optional(Type.Integer({ minimum: 0 })),
  override_settings: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'sd_model_checkpoint picks the model' })),
  send_images: Type.Boolean({ default: true }),
};
export const A1111Txt2Img = Type.Object(a1111Common, { description: 'AUTOMATIC1111 /sdapi/v1/txt2img (unknown fields are ignored, as A1111 does)' });
export const A1111Img2Img = Type.Object({
  ...a1111Common,
  init_images: Type.Array(Type.String(), { minItems: 1, description: 'base64 images; the first is the reference of an image-prompt variation (vary, InDetail-IP)' }),
  denoising_strength: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'accepted for compatibility; vary does not use it' })),
}, { description: 'AUTOMATIC1111 /sdapi/v1/img2img, mapped to vary (image-prompt variation of init_images[0])' });
export type A1111Txt2ImgT = Static<typeof A1111Txt2Img>;
export type A1111Img2ImgT = Static<typeof A1111Img2Img>;
export const A1111Images = Type.Object({ images: Type.Array(Type.String()), parameters: Type.Record(Type.String(), Type.Unknown()), info: Type.String() });
