/**
 * The `parameters` text chunk of the PNGs the image commands write: every result-affecting option of the
 * command, taken from the command's option spec (params/job-options.ts, the same definition its flags are
 * built from), so a flag added to a command is recorded without touching the command's action. Keys are
 * snake_case (`--negative-prompt` -> negative_prompt, `--prompt-2` -> prompt_2), values as given on the
 * command line (paths as typed, parsed flags written back in their flag syntax), absent optional ones null.
 */
import type { LoraSpec } from '../adapters/lora/lora-set.js';
import type { OptionSpecs } from '../params/option-spec.js';
import type { GlobalOptions } from './main.js';

/** Output-only options: where results go, not what they are. */
const NOT_RECORDED = new Set(['out', 'saveLatents', 'saveLatentsFile', 'saveChain', 'previewEvery']);

/** `negativePrompt2` -> `negative_prompt_2` (the chunk's keys, as diffusers' argument names). */
export function snakeKey(camel: string): string {
  return camel.replace(/([A-Z])/g, (c) => `_${c.toLowerCase()}`).replace(/([a-z])(\d)/g, '$1_$2');
}

/** Flags whose parser turns the text into a structure: written back in the flag's syntax. */
const FLAG_SYNTAX: Record<string, (v: never) => unknown> = {
  lora: (v: LoraSpec[]) => v.map((l) => (l.scale === undefined ? l.path : `${l.path}:${l.scale}`)),
  // sizeFlag parses WxH into [height, width]
  originalSize: ([h, w]: [number, number]) => `${w}x${h}`,
  targetSize: ([h, w]: [number, number]) => `${w}x${h}`,
  cropTopLeft: ([top, left]: [number, number]) => `${top},${left}`,
  gammaRamp: ([a, b]: [number, number]) => `${a}:${b}`,
};

function jsonValue(key: string, v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return String(v);
  if (key === 'seed') return String(v);
  const f = FLAG_SYNTAX[key];
  return f ? f(v as never) : v;
}

/**
 * The chunk's JSON object: every option of `specs` except output-only ones, from commander's parsed options
 * `o`, with the settings taken where the model is opened (`g`: --precision before or after the command,
 * --config, --sd-version, --prediction-type), then `resolved` over them: values the run resolved (seed
 * drawn, scheduler class, image size, method defaults) and the keys the commands recorded before.
 */
export function parametersChunk(specs: OptionSpecs, o: object, g: GlobalOptions, resolved: Record<string, unknown> = {}): Record<string, unknown> {
  const given = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(specs)) {
    if (NOT_RECORDED.has(key)) continue;
    // options the CLI adds outside the spec's commander options (--lora) have no commander default: the spec's
    const spec = specs[key]!;
    out[snakeKey(key)] = jsonValue(key, given[key] ?? (spec.presence === 'default' ? spec.default : undefined));
  }
  if ('precision' in specs) out.precision = g.precision ?? given.precision ?? 'fp32';
  out.config = g.config ?? null;
  if (g.sdVersion !== undefined) out.sd_version = g.sdVersion;
  if (g.predictionType !== undefined) out.prediction_type = g.predictionType;
  return { ...out, ...resolved };
}
