/**
 * Random weights as an F16 .safetensors file (most published SD checkpoints are F16): the float32 stream
 * RandomWeights serves, rounded to half precision (round to nearest even), written block by block.
 */
import fs from 'node:fs';
import { numel } from '../src/tensor.js';
import { randomRowBlocks, type WeightTable } from './random-weights.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32, round to nearest even (as torch's .half()). */
export function toHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent (correct)
  return sign | h;
}

/** Write `table` as F16 safetensors; returns the bytes of tensor data written. */
export function writeRandomSafetensorsF16(file: string, table: WeightTable, seed = 0): number {
  const header: Record<string, unknown> = {};
  let off = 0;
  const at = new Map<string, number>();
  for (const [name, s] of table) {
    const bytes = numel(s.shape) * 2;
    header[name] = { dtype: 'F16', shape: s.shape, data_offsets: [off, off + bytes] };
    at.set(name, off);
    off += bytes;
  }
  let h = Buffer.from(JSON.stringify(header), 'utf8');
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, h, 0, h.length, 8);
    const base = 8 + h.length;
    for (const [key, spec] of table) {
      const rowLen = numel(spec.shape) / (spec.shape[0] ?? 1);
      for (const { row, data } of randomRowBlocks(key, spec, seed)) {
        const out = new Uint16Array(data.length);
        for (let i = 0; i < data.length; i++) out[i] = toHalfBits(data[i]!);
        fs.writeSync(fd, out, 0, out.byteLength, base + at.get(key)! + row * rowLen * 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return off;
}
