/**
 * Flags for the text-conditioning extras of model families that have them (SDXL): the second text
 * encoder's prompts and the micro-conditioning. Models without them ignore these.
 */
import type { Command } from 'commander';
import type { ConditioningOptions, MicroConditioning } from '../components/prompt-conditioner.js';
import { InputError } from '../errors.js';

/** `WxH` (width first, as users write sizes) -> [height, width] as diffusers' original_size / target_size. */
export function sizeFlag(flag: string): (v: string) => [number, number] {
  return (v) => {
    const m = /^\s*(\d+)\s*[xX]\s*(\d+)\s*$/.exec(v);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new InputError(`${flag} must be WIDTHxHEIGHT in pixels (e.g. 1024x1024), got ${JSON.stringify(v)}`);
    return [Number(m[2]), Number(m[1])];
  };
}

/** `TOP,LEFT` -> [top, left] (diffusers' crops_coords_top_left order). */
export function cropFlag(v: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  if (!m) throw new InputError(`--crop-top-left must be TOP,LEFT in pixels (e.g. 0,0), got ${JSON.stringify(v)}`);
  return [Number(m[1]), Number(m[2])];
}

export interface ConditioningFlags {
  prompt2?: string;
  negativePrompt2?: string;
  originalSize?: [number, number];
  cropTopLeft?: [number, number];
  targetSize?: [number, number];
}

/** The micro-conditioning flags only (invert has no negative prompt). */
export function addMicroConditioningFlags(cmd: Command): Command {
  return cmd
    .option('--original-size <WxH>', 'SDXL micro-conditioning original_size (default: the image size)', sizeFlag('--original-size'))
    .option('--crop-top-left <TOP,LEFT>', 'SDXL micro-conditioning crops_coords_top_left (default: 0,0)', cropFlag)
    .option('--target-size <WxH>', 'SDXL micro-conditioning target_size (default: the image size)', sizeFlag('--target-size'));
}

export function addConditioningFlags(cmd: Command): Command {
  return addMicroConditioningFlags(cmd
    .option('--prompt-2 <text>', 'SDXL: prompt for the second text encoder (default: --prompt)')
    .option('--negative-prompt-2 <text>', 'SDXL: negative prompt for the second text encoder (default: --negative-prompt)'));
}

export function microFrom(o: ConditioningFlags): Partial<MicroConditioning> {
  return {
    ...(o.originalSize ? { originalSize: o.originalSize } : {}),
    ...(o.cropTopLeft ? { cropTopLeft: o.cropTopLeft } : {}),
    ...(o.targetSize ? { targetSize: o.targetSize } : {}),
  };
}

/** Pipeline options from the flags. */
export function conditioningFrom(o: ConditioningFlags): ConditioningOptions {
  return {
    ...(o.prompt2 !== undefined ? { prompt2: o.prompt2 } : {}),
    ...(o.negativePrompt2 !== undefined ? { negativePrompt2: o.negativePrompt2 } : {}),
    micro: microFrom(o),
  };
}
