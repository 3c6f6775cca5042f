/** Byte builders for the hand-made files of the format tests (pickle streams, torch zips, safetensors bodies). */

/** A byte, a Latin-1 string, bytes, or a list of those. */
export type Part = number | string | Buffer | Part[];
/** The parts' bytes one after another. */
export function P(...parts: Part[]): Buffer {
  return Buffer.concat(parts.map((x) => (Array.isArray(x) ? P(...x) : typeof x === 'number' ? Buffer.from([x]) : typeof x === 'string' ? Buffer.from(x, 'latin1') : x)));
}
/** Little-endian float32 values. */
export const f32 = (...v: number[]): Buffer => { const b = Buffer.alloc(4 * v.length); v.forEach((x, i) => b.writeFloatLE(x, 4 * i)); return b; };
/** Little-endian uint16 values. */
export const u16 = (...v: number[]): Buffer => { const b = Buffer.alloc(2 * v.length); v.forEach((x, i) => b.writeUInt16LE(x, 2 * i)); return b; };
