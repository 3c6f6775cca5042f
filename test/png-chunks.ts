/** PNG files assembled per the specification (ISO/IEC 15948): signature, then chunks of length, type, body, CRC. */
import { deflateSync } from 'node:zlib';
import { crc32 } from '../src/io/image.js';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One chunk: big-endian body length, the Latin-1 type, the body, the CRC-32 of type + body (or the given one). */
export function pngChunk(type: string, body: Buffer, crc?: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const c = Buffer.alloc(4);
  c.writeUInt32BE(crc ?? crc32(tb));
  return Buffer.concat([len, tb, c]);
}

/** IHDR, one IDAT of the rows (each prefixed with filter byte 0) when given, IEND. */
export function pngImage(width: number, height: number, depth: number, colourType: number, rows?: Buffer[]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth;
  ihdr[9] = colourType;
  const parts = [PNG_SIGNATURE, pngChunk('IHDR', ihdr)];
  if (rows) parts.push(pngChunk('IDAT', deflateSync(Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r]))))));
  parts.push(pngChunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}
