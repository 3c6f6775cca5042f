/** Writing what commands produce: numbered PNGs with their parameters, latents files. */
import path from 'node:path';
import fs from 'node:fs';
import { InputError } from '../errors.js';
import { writePNG, type RGBImage } from '../io/image.js';
import { readAllFloat32, writeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor.js';

/** `a.png` for one image; `a-0.png`, `a-1.png`, ... for several. */
export function numberedPaths(out: string, k: number): string[] {
  if (k === 1) return [out];
  const ext = path.extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({ length: k }, (_, i) => `${stem}-${i}${ext || '.png'}`);
}

export async function writeImages(out: string, images: readonly RGBImage[], parameters: Record<string, unknown>): Promise<string[]> {
  ensureDir(out);
  const paths = numberedPaths(out, images.length);
  for (const [i, im] of images.entries()) {
    await writePNG(paths[i]!, im, { parameters: JSON.stringify({ ...parameters, ...(images.length > 1 ? { index: i } : {}) }), Software: 'visprompt' });
  }
  return paths;
}

/** Create the output file's folder if needed (a path under a regular file is the user's mistake). */
export function ensureDir(file: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new InputError(`cannot create the output folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export function saveTensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  ensureDir(file);
  writeSafetensors(file, tensors, metadata);
}

/** Read key `key` (e.g. `latents`) from a safetensors file; the shape is checked by the pipeline. */
export function loadTensor(file: string, key: string): Tensor {
  const all = readAllFloat32(file);
  const t = all[key];
  if (!t) throw new InputError(`${file}: no tensor named "${key}" (found: ${Object.keys(all).join(', ') || 'none'})`);
  return t;
}
