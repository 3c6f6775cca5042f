/**
 * The request schemas of every job kind, generated from the one definition of each parameter
 * (src/params/job-options.ts: name, type, range, default, help text) that the CLI's options are built
 * from too. The HTTP server validates with them, /openapi.json is generated from them and the web form
 * is built from them (the help texts are its tooltips).
 */
import { Type, type Static } from 'typebox';
import { EDIT_OPTIONS, FUSE_OPTIONS, GENERATE_OPTIONS, INJECT_OPTIONS, INVERT_OPTIONS, VARY_OPTIONS } from '../params/job-options.js';
import { schemaProperties } from '../params/option-spec.js';

const literals = <T extends string>(values: readonly T[], o: { description: string; default?: T }) => Type.Enum([...values], o);

const strict = { additionalProperties: false } as const;

export const GenerateRequest = Type.Object(schemaProperties(GENERATE_OPTIONS),
  { ...strict, description: 'text-to-image with classifier-free guidance (or unconditional sampling of a pixel-space DDPM model)' });
export const VaryRequest = Type.Object(schemaProperties(VARY_OPTIONS),
  { ...strict, description: 'generate from a reference image: image variation (prompt = a caption of it) or cross-prompt generation (inversionPrompt "")' });
export const InvertRequest = Type.Object(schemaProperties(INVERT_OPTIONS),
  { ...strict, description: 'DDIM inversion of an image: writes the chain z_0 .. z_N (chain.safetensors, key "chain", [N+1, 1, C, h, w])' });
export const InjectRequest = Type.Object(schemaProperties(INJECT_OPTIONS),
  { ...strict, description: 'InjectFusion: inject the content image\'s h-space into the original image\'s generative process' });
export const EditRequest = Type.Object(schemaProperties(EDIT_OPTIONS),
  { ...strict, description: 'Asyrp: edit an image with an attribute network (DeltaBlock) in h-space' });
export const FuseRequest = Type.Object(schemaProperties(FUSE_OPTIONS),
  { ...strict, description: 'Visual Concept Fusion: generate from a prompt fused with a reference image through a trained aligner' });

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
  generate: ['controlImage', 'ipImage'], vary: ['image', 'controlImage', 'ipImage'], invert: ['image'], inject: ['image', 'content', 'mask'], edit: ['image'], fuse: ['image', 'controlImage', 'ipImage'],
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
