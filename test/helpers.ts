import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { readAllFloat32, SafetensorsFile } from '../src/io/safetensors.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');
export const MODELS = ['tiny-sd15', 'tiny-sd21'] as const;
export const modelDir = (m: string): string => path.join(FIXTURES, 'models', m);
export const goldenPath = (m: string, name: string): string => path.join(FIXTURES, 'goldens', m, name);

const cache = new Map<string, Record<string, Tensor>>();
export function golden(m: string, file: string): Record<string, Tensor> {
  const p = goldenPath(m, `${file}.safetensors`);
  let g = cache.get(p);
  if (!g) { g = readAllFloat32(p); cache.set(p, g); }
  return g;
}
export function goldenInts(m: string, file: string, key: string): { shape: number[]; data: number[] } {
  const f = SafetensorsFile.open(goldenPath(m, `${file}.safetensors`));
  try { return f.readInts(key); } finally { f.close(); }
}

/** Assert max |a - b| <= tol and return it (tests log the observed errors). */
export function close(actual: Tensor, expected: Tensor, tol: number, what: string): number {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const err = maxAbsDiff(actual, expected);
  assert.ok(err <= tol, `${what}: max abs err ${err} > ${tol}`);
  return err;
}

export function rowOf(t: Tensor, i: number): Tensor {
  const inner = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [1, ...t.shape.slice(1)], data: t.data.subarray(i * inner, (i + 1) * inner) };
}
