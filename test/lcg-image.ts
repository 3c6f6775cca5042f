/**
 * The 23x17 RGB test image of the Pillow CRC tables (image.test, pil-resize-edges): bytes from a 31-bit LCG
 * (seed 42), the same bytes the Python side fed to Image.frombytes('RGB', (23, 17), data) for the expected CRCs.
 */
export const LCG_W = 23, LCG_H = 17;

export function lcgImageBytes(): Uint8Array {
  const data = new Uint8Array(LCG_W * LCG_H * 3);
  let s = 42;
  for (let i = 0; i < data.length; i++) { s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff; data[i] = (s >> 16) & 255; }
  return data;
}
