/** The IP-Adapter flags of the sampling commands: --ip-adapter / --ip-image / --ip-scale (repeatable, paired by position), --image-encoder. */
import type { Command } from 'commander';
import type { IPAdapterInput } from '../adapters/ip-adapter/prepare.js';
import { InputError } from '../errors.js';
import { readImageRGB } from '../io/image.js';
import { float } from './parse.js';

export interface IPAdapterFlags {
  ipAdapter: string[];
  ipImage: string[];
  ipScale: number[];
  imageEncoder?: string;
}

const collect = <T>(parse: (v: string) => T) => (v: string, prev: T[] = []): T[] => [...prev, parse(v)];

export function addIPAdapterFlags(cmd: Command): Command {
  return cmd
    .option('--ip-adapter <file>', 'IP-Adapter weights (official ip-adapter*.safetensors or .bin; repeatable, paired with --ip-image)', collect((v) => v), [])
    .option('--ip-image <file>', 'image prompt for the IP-Adapter at the same position', collect((v) => v), [])
    .option('--ip-scale <x>', 'scale of the IP-Adapter at the same position (default 1; 0 switches it off)', collect(float('--ip-scale')), [])
    .option('--image-encoder <dir>', 'CLIP image encoder folder for the IP-Adapters (default: the model\'s image_encoder/)');
}

/** The adapters of a run, with their images read; counts checked. */
export async function ipAdaptersFrom(o: IPAdapterFlags): Promise<IPAdapterInput[]> {
  const n = o.ipAdapter.length;
  if (o.ipImage.length !== n) throw new InputError(`${n} --ip-adapter but ${o.ipImage.length} --ip-image: give one image prompt per IP-Adapter`);
  if (o.ipScale.length !== 0 && o.ipScale.length !== n) throw new InputError(`${o.ipScale.length} --ip-scale for ${n} --ip-adapter: give none (1.0 each) or one per IP-Adapter`);
  if (n === 0 && o.imageEncoder !== undefined) throw new InputError('--image-encoder is only used with --ip-adapter');
  const out: IPAdapterInput[] = [];
  for (let j = 0; j < n; j++) out.push({ adapter: o.ipAdapter[j]!, image: await readImageRGB(o.ipImage[j]!), scale: o.ipScale[j] ?? 1 });
  return out;
}

/** The adapters of a run for the PNG's `parameters` chunk (nothing without adapters). */
export function ipAdapterParameters(o: IPAdapterFlags): Record<string, unknown> {
  if (o.ipAdapter.length === 0) return {};
  return { ip_adapters: o.ipAdapter.map((file, j) => ({ file, image: o.ipImage[j], scale: o.ipScale[j] ?? 1 })), ...(o.imageEncoder ? { image_encoder: o.imageEncoder } : {}) };
}
