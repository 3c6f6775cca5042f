/**
 * The parameters of every job kind (generate, invert, vary, inject, edit, fuse), defined once: the CLI
 * builds its commander options from these (src/cli/commands/*) and the server its TypeBox request
 * schemas (src/server/schemas.ts), so names, defaults, ranges and help texts cannot drift apart.
 * Keys are commander's attribute names of the flags (`--lambda-p` -> lambdaP), i.e. the JSON fields.
 */
import { Type } from 'typebox';
import { parseLoraSpec } from '../adapters/lora/lora-set.js';
import { cropFlag, sizeFlag } from '../cli/conditioning-flags.js';
import { seed } from '../cli/parse.js';
import { InputError } from '../errors.js';
import { KV_CONCAT_DEFAULTS, KV_REPLACE_DEFAULTS } from '../methods/baselines.js';
import { GUIDANCE_MODES, METHOD_NAMES } from '../methods/method.js';
import { FUSIONS } from '../methods/vcf/fusion.js';
import { NOISE_KINDS } from '../noise/gaussian.js';
import { checkSchedulerName, SCHEDULERS } from '../schedulers/index.js';
import { TIMESTEP_SPACINGS } from '../schedulers/scheduler-config.js';
import { cliOnly, optional, required, serverOnly, withDefault } from './option-spec.js';
import { PRECISIONS } from '../graph/quantize.js';

const enumOf = <T extends string>(values: readonly T[]) => Type.Enum([...values]);
const Text = Type.String({ maxLength: 4000 });
/** A model, weights file or folder: a path on the CLI, a name under --models on the server. */
const Name = Type.String({ minLength: 1, maxLength: 512 });
/** An image: a file on the CLI, an upload id or data: URL on the server. */
const Image = Type.String({ minLength: 1 });
const Seed = Type.Union([Type.Integer(), Type.String({ pattern: '^-?\\d+$' })]);
const Timestep = Type.Integer({ minimum: 0, maximum: 1000 });
/** The server caps image sides (memory); the CLI only needs them positive. */
const ServerSize = Type.Integer({ minimum: 8, maximum: 4096 });
const collect = <T>(parse: (v: string) => T) => (v: string, prev: T[] = []): T[] => [...prev, parse(v)];

function ramp(v: string): [number, number] {
  const m = /^\s*([-+.\deE]+)\s*:\s*([-+.\deE]+)\s*$/.exec(v);
  const a = Number(m?.[1]), b = Number(m?.[2]);
  if (!m || !Number.isFinite(a) || !Number.isFinite(b)) throw new InputError(`--gamma-ramp must look like A:B (e.g. 0.3:0.7), got ${JSON.stringify(v)}`);
  return [a, b];
}

/** LoRAs of every command that samples with the model (the CLI adds --lora to those commands in main.ts). */
export const LORA = serverOnly(withDefault('--lora <file[:scale]>', 'LoRA file (kohya/A1111 or diffusers/PEFT) and its scale (default 1); repeatable, the terms add up',
  Type.Array(Type.String({ minLength: 1, maxLength: 600 }), { maxItems: 16 }), [], { ref: 'models', parse: collect((v) => parseLoraSpec(v)) }));

/** Precision of the UNet, ControlNets and VAE (the CLI adds --precision to every command in main.ts). */
export const PRECISION = serverOnly(withDefault('--precision <p>', 'fp32 (exact) or int8 (UNet, ControlNet and VAE encoder quantized; faster on CPUs with int8 matrix instructions, an approximation; the VAE decoder stays float32)', enumOf(PRECISIONS), 'fp32'));

/** SDXL micro-conditioning (other families ignore it). */
export const MICRO_OPTIONS = {
  originalSize: optional('--original-size <WxH>', 'SDXL micro-conditioning original_size (default: the image size)', Type.String({ pattern: '^\\d+[xX]\\d+$' }), { parse: sizeFlag('--original-size') }),
  cropTopLeft: optional('--crop-top-left <TOP,LEFT>', 'SDXL micro-conditioning crops_coords_top_left (default: 0,0)', Type.String({ pattern: '^\\d+,\\d+$' }), { parse: cropFlag }),
  targetSize: optional('--target-size <WxH>', 'SDXL micro-conditioning target_size (default: the image size)', Type.String({ pattern: '^\\d+[xX]\\d+$' }), { parse: sizeFlag('--target-size') }),
};

/** The flags every sampling command shares (generate, vary, fuse). */
export const SAMPLING_OPTIONS = {
  prompt2: optional('--prompt-2 <text>', 'SDXL: prompt for the second text encoder (default: --prompt)', Text),
  negativePrompt2: optional('--negative-prompt-2 <text>', 'SDXL: negative prompt for the second text encoder (default: --negative-prompt)', Text),
  ...MICRO_OPTIONS,
  model: required('--model <path>', 'diffusers folder or single-file checkpoint', Name, { ref: 'models' }),
  negativePrompt: optional('--negative-prompt <text>', 'negative prompt (the unconditional branch of guidance)', Text),
  steps: withDefault('--steps <n>', 'denoising steps', Type.Integer({ minimum: 1, maximum: 1000 }), 50),
  guidance: withDefault('--guidance <g>', 'classifier-free guidance scale (<= 1: no unconditional branch)', Type.Number(), 7.5),
  width: optional('--width <w>', 'image width in pixels (multiple of the VAE factor; default: the model\'s native size)', Type.Integer({ minimum: 1 }), { serverType: ServerSize }),
  height: optional('--height <h>', 'image height in pixels (multiple of the VAE factor; default: the model\'s native size)', Type.Integer({ minimum: 1 }), { serverType: ServerSize }),
  numImages: withDefault('--num-images <k>', 'images to generate', Type.Integer({ minimum: 1, maximum: 64 }), 1),
  seed: optional('--seed <s>', 'random seed (default: random)', Seed, { parse: seed }),
  noise: withDefault('--noise <kind>', 'initial-noise generator: torch (bit-exact torch.randn on CPU, as diffusers) or native', enumOf(NOISE_KINDS), 'torch'),
  latents: cliOnly(optional('--latents <file>', 'initial noise from a safetensors file (key "latents", [K, C, h, w])', Type.String())),
  scheduler: optional('--scheduler <name>', `sampler: ${SCHEDULERS.join(', ')} (default: the class the model's scheduler/scheduler_config.json names, as diffusers loads it; vary and fuse sample with ddim only)`,
    enumOf(SCHEDULERS), { parse: (v) => checkSchedulerName(v) }),
  timestepSpacing: optional('--timestep-spacing <s>', `override the scheduler config's timestep_spacing: ${TIMESTEP_SPACINGS.join(', ')}`, enumOf(TIMESTEP_SPACINGS)),
  eta: withDefault('--eta <e>', 'DDIM eta (0: deterministic)', Type.Number({ minimum: 0 }), 0),
  saveLatentsFile: cliOnly(optional('--save-latents <file>', 'write the final latents (key "latents") before VAE decoding', Type.String())),
  saveLatents: serverOnly(withDefault('--save-latents', 'also write the final latents (latents.safetensors, key "latents")', Type.Boolean(), false)),
  vaeTiny: optional('--vae-tiny <dir>', 'decode (and encode references) with this tiny VAE (TAESD folder: config.json + weights) instead of the model\'s VAE', Name, { ref: 'models' }),
  controlnet: withDefault('--controlnet <path>', 'ControlNet folder (repeatable, paired with --control-image)', Type.Array(Name, { maxItems: 8 }), [], { ref: 'models' }),
  controlImage: withDefault('--control-image <file>', 'condition image for the ControlNet at the same position (depth map, edges, ...)', Type.Array(Image, { maxItems: 8 }), [], { ref: 'image' }),
  controlScale: withDefault('--control-scale <x>', 'conditioning scale of the ControlNet at the same position (default 1)', Type.Array(Type.Number(), { maxItems: 8 }), []),
  out: cliOnly(required('--out <file.png>', 'output image; with several images a-0.png, a-1.png, ...', Type.String())),
  lora: LORA,
  precision: PRECISION,
};

/** IP-Adapters (generate, vary and fuse). */
export const IP_ADAPTER_OPTIONS = {
  ipAdapter: withDefault('--ip-adapter <file>', 'IP-Adapter weights (official ip-adapter*.safetensors or .bin; repeatable, paired with --ip-image)', Type.Array(Name, { maxItems: 8 }), [], { ref: 'models' }),
  ipImage: withDefault('--ip-image <file>', 'image prompt for the IP-Adapter at the same position', Type.Array(Image, { maxItems: 8 }), [], { ref: 'image' }),
  ipScale: withDefault('--ip-scale <x>', 'scale of the IP-Adapter at the same position (default 1; 0 switches it off)', Type.Array(Type.Number(), { maxItems: 8 }), []),
  imageEncoder: optional('--image-encoder <dir>', 'CLIP image encoder folder for the IP-Adapters (default: the model\'s image_encoder/)', Name, { ref: 'models' }),
};

/** diffusers' clip_skip, on every text encoding of a run (a vary's or inject's inversion prompt too: the same conditioning as the sampling). */
const clipSkip = optional('--clip-skip <n>', 'text encoder layers to skip (diffusers clip_skip; on every prompt of the run, an inversion\'s too)', Type.Integer({ minimum: 0 }));

const previewEvery = optional('--preview-every <n>', 'every n steps write OUT.preview-stepNNN.png (on the server: a preview in the job\'s progress events): the predicted final image, decoded by --vae-tiny (else a latent-size linear approximation)',
  Type.Integer({ minimum: 1 }));

export const GENERATE_OPTIONS = {
  prompt: optional('--prompt <text>', 'the prompt (required for text-conditioned models)', Text),
  ...SAMPLING_OPTIONS,
  ...IP_ADAPTER_OPTIONS,
  clipSkip,
  previewEvery,
};

export const INVERT_OPTIONS = {
  ...MICRO_OPTIONS,
  prompt2: optional('--prompt-2 <text>', 'SDXL: inversion prompt for the second text encoder (default: --prompt)', Text),
  model: required('--model <path>', 'diffusers folder or single-file checkpoint', Name, { ref: 'models' }),
  image: required('--image <file>', 'image to invert', Image, { ref: 'image' }),
  prompt: withDefault('--prompt <text>', 'inversion prompt (a caption of the image, or "")', Text, ''),
  steps: withDefault('--steps <n>', 'inversion steps', Type.Integer({ minimum: 1, maximum: 1000 }), 50),
  guidance: optional('--guidance <g>', 'classifier-free guidance of the inverse steps (> 1: uncond "" + g (cond - uncond), as MasaCtrl / StyleAligned; default 1 = none)', Type.Number()),
  width: optional('--width <w>', 'resize to this width first', Type.Integer({ minimum: 1 }), { serverType: ServerSize }),
  height: optional('--height <h>', 'resize to this height first', Type.Integer({ minimum: 1 }), { serverType: ServerSize }),
  saveChain: cliOnly(required('--save-chain <file.safetensors>', 'output file', Type.String())),
  vaeTiny: optional('--vae-tiny <dir>', 'encode the image with this tiny VAE (TAESD folder) instead of the model\'s VAE', Name, { ref: 'models' }),
  scheduler: optional('--scheduler <name>', 'inversion is DDIM inversion (DDIMInverseScheduler): ddim only', enumOf(SCHEDULERS),
    { parse: (v) => checkSchedulerName(v), serverType: enumOf(['ddim']) }),
  clipSkip,
  lora: LORA,
  precision: PRECISION,
};

/** What inject and edit share (the h-space commands). */
const HSPACE_OPTIONS = {
  model: required('--model <path>', 'Stable Diffusion checkpoint or pixel-space DDPM (UNet2DModel) folder', Name, { ref: 'models' }),
  prompt: optional('--prompt <text>', 'text conditioning for Stable Diffusion models (inversion and generation; default "")', Text),
  steps: withDefault('--steps <n>', 'DDIM steps (inversion and generation)', Type.Integer({ minimum: 1, maximum: 1000 }), 50),
  seed: optional('--seed <s>', 'seed for the stochastic steps (default: random)', Seed, { parse: seed }),
  noise: withDefault('--noise <kind>', 'noise generator: torch or native', enumOf(NOISE_KINDS), 'torch'),
  saveLatentsFile: cliOnly(optional('--save-latents <file>', 'write the final latents / sample (key "latents")', Type.String())),
  saveLatents: serverOnly(withDefault('--save-latents', 'also write the final latents / sample (latents.safetensors, key "latents")', Type.Boolean(), false)),
  vaeTiny: optional('--vae-tiny <dir>', 'encode and decode with this tiny VAE (TAESD folder) instead of the model\'s VAE', Name, { ref: 'models' }),
  out: cliOnly(required('--out <file.png>', 'output image', Type.String())),
  clipSkip,
  previewEvery,
  lora: LORA,
  precision: PRECISION,
};

export const INJECT_OPTIONS = {
  ...HSPACE_OPTIONS,
  image: required('--image <file>', 'the original image (its x_T and skip connections are kept)', Image, { ref: 'image' }),
  content: required('--content <file>', 'the content image (its h-space is injected)', Image, { ref: 'image' }),
  tEdit: withDefault('--t-edit <t>', 'inject at timesteps t >= T', Timestep, 400),
  gamma: optional('--gamma <x>', 'slerp weight γ of the content h (0: none, 1: all; default 0.5)', Type.Number({ minimum: 0, maximum: 1 })),
  gammaRamp: optional('--gamma-ramp <a:b>', 'γ ramped linearly from a (first injected step) to b (last); on the server [a, b]', Type.Tuple([Type.Number(), Type.Number()]), { parse: ramp }),
  omega: withDefault('--omega <w>', 'style calibration strength ω (0: off)', Type.Number(), 0),
  mask: optional('--mask <file>', 'image whose white area restricts the injection (resized to the h-space grid)', Image, { ref: 'image' }),
  tNoise: withDefault('--t-noise <t>', 'eta 0 above this timestep, 1 at and below', Timestep, 200),
  dtLambda: withDefault('--dt-lambda <x>', 'scale of the direction term for t >= 950 while injecting', Type.Number({ minimum: 0 }), 0.9985),
};

export const EDIT_OPTIONS = {
  ...HSPACE_OPTIONS,
  image: required('--image <file>', 'the image to edit', Image, { ref: 'image' }),
  // Asyrp's official runs invert and generate with 40 steps (n_inv_step = n_test_step = 40): editImage's default
  steps: withDefault('--steps <n>', 'DDIM steps (inversion and generation)', Type.Integer({ minimum: 1, maximum: 1000 }), 40),
  attribute: required('--attribute <file.safetensors>', 'attribute network weights (DeltaBlock)', Name, { ref: 'models' }),
  strength: withDefault('--strength <c>', 'edit strength c in h\' = h + c dh', Type.Number(), 1),
  tEdit: withDefault('--t-edit <t>', 'edit at timesteps t >= T', Timestep, 500),
  tBoost: withDefault('--t-boost <t>', 'stochastic (eta 1) below this timestep', Timestep, 200),
};

export const FUSE_OPTIONS = {
  ...SAMPLING_OPTIONS,
  aligner: required('--aligner <file>', 'aligner weights from train-aligner', Name, { ref: 'models' }),
  image: required('--image <file>', 'the reference image (visual concept)', Image, { ref: 'image' }),
  prompt: required('--prompt <text>', 'the prompt', Text),
  fusion: withDefault('--fusion <kind>', `how image and text tokens combine: ${FUSIONS.join(', ')}`, enumOf(FUSIONS), 'concat'),
  pnoSteps: withDefault('--pno-steps <n>', 'Prompt-Noise Optimization iterations (0: off; the paper uses 10-50)', Type.Integer({ minimum: 0, maximum: 1000 }), 0),
  pnoLr: withDefault('--pno-lr <x>', 'Adam learning rate of PNO', Type.Number({ minimum: 0 }), 1e-2),
  clip: optional('--clip <path>', 'CLIP model folder for PNO\'s similarity (default: the checkpoint\'s image_encoder)', Name, { ref: 'models' }),
  ...IP_ADAPTER_OPTIONS,
  clipSkip,
  previewEvery,
  checkpointing: withDefault('--no-checkpointing', 'PNO gradient checkpointing: recompute each UNet call instead of keeping every activation of the sampling chain (off: faster, more memory)', Type.Boolean(), true),
};

export const VARY_OPTIONS = {
  ...SAMPLING_OPTIONS,
  ...IP_ADAPTER_OPTIONS,
  image: required('--image <file>', 'the reference image (image prompt)', Image, { ref: 'image' }),
  prompt: optional('--prompt <text>', 'text prompt (default: the inversion prompt); repeat it for one image per prompt (StyleAligned\'s prompt list)',
    Type.Union([Text, Type.Array(Text, { minItems: 1, maxItems: 64 })]), { parse: collect((v) => v) }),
  inversionPrompt: optional('--inversion-prompt <text>', 'caption used to invert the reference ("" for cross-prompt generation; default: the prompt)', Text),
  inversionGuidance: optional('--inversion-guidance <g>', 'classifier-free guidance of the reference\'s DDIM inversion (> 1: uncond + g (cond - uncond); default: none; kv-replace: --guidance as official MasaCtrl; style-aligned: 2 as official StyleAligned)', Type.Number()),
  method: withDefault('--method <name>', `image-prompt method: ${METHOD_NAMES.join(', ')}`, enumOf(METHOD_NAMES), 'indetail-ip'),
  guidanceMode: optional('--guidance-mode <mode>', 'conflict-free (reference only in the conditional branch; default for indetail-ip) or conflicting (both branches; default for the baselines)', enumOf(GUIDANCE_MODES)),
  stratifiedSteps: optional('--stratified-steps <s>', 'InDetail-IP: steps with Stratified Attention (default 10 of 50, scaled to --steps)', Type.Integer({ minimum: 0 })),
  lambdaP: withDefault('--lambda-p <x>', 'InDetail-IP: weight of the image-prompt attention (λP)', Type.Number({ minimum: 0 }), 1),
  lambdaG: withDefault('--lambda-g <y>', 'InDetail-IP: weight of the generated image\'s own attention (λG)', Type.Number({ minimum: 0 }), 1),
  tAlign: optional('--t-align <t>', `kv-concat (RIVAL): reference-only K/V above this timestep (default ${KV_CONCAT_DEFAULTS.tAlign})`, Timestep),
  tEarly: optional('--t-early <t>', `kv-concat (RIVAL): AdaIN of the guided noise to the reference's above this timestep (default ${KV_CONCAT_DEFAULTS.tEarly})`, Timestep),
  startStep: optional('--start-step <n>', `kv-replace (MasaCtrl): first step that replaces K/V (default ${KV_REPLACE_DEFAULTS.startStep})`, Type.Integer({ minimum: 0 })),
  startLayer: optional('--start-layer <n>', `kv-replace (MasaCtrl): first self-attention layer (forward order) that replaces K/V (default ${KV_REPLACE_DEFAULTS.startLayer})`, Type.Integer({ minimum: 0 })),
  scoreScale: optional('--score-scale <x>', 'style-aligned (StyleAligned): shared_score_scale, multiplies the reference keys (default 1)', Type.Number()),
  scoreShift: optional('--score-shift <y>', 'style-aligned (StyleAligned): shared_score_shift, added to the reference logits (default log 2 = 0.693)', Type.Number()),
  inversionOffset: optional('--inversion-offset <n>', 'style-aligned (StyleAligned): the reference row starts from the inversion chain\'s zts[n] (most noisy first) and is pinned to zts[max(n+1, i+1)] after step i (default steps/10, at least 2)', Type.Integer({ minimum: 0 })),
  controlUncondSteps: optional('--control-uncond-steps <n>', 'with --controlnet: first steps whose unconditional branch gets no ControlNet residuals (default 10 of 50, scaled)', Type.Integer({ minimum: 0 })),
  clipSkip,
  previewEvery,
};
