/**
 * Uploaded images: checked (a real image, within the size and dimension limits) and stored once under
 * --data/uploads by the SHA-256 of their bytes; jobs refer to them by that id.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { HttpError } from './http-error.js';

export interface UploadLimits {
  /** Largest accepted image file, bytes. */
  maxBytes: number;
  /** Largest accepted width or height, pixels. */
  maxSide: number;
}
export interface StoredUpload { id: string; width: number; height: number; format: string }

const FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff']);
const ID = /^[0-9a-f]{64}$/;
const CONTENT_TYPES: Record<string, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff' };

export class Uploads {
  readonly dir: string;
  constructor(dataDir: string, readonly limits: UploadLimits) {
    this.dir = path.join(dataDir, 'uploads');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  isId(s: string): boolean { return ID.test(s); }

  /** The stored file of an id, or a 4xx naming `field`. */
  pathOf(id: string, field: string): string {
    if (!ID.test(id)) throw new HttpError(400, `${field}: expected an upload id (64 hex digits from POST /api/uploads) or a data: URL`);
    const p = path.join(this.dir, `${id}.img`);
    if (!fs.existsSync(p)) throw new HttpError(404, `${field}: no upload with id ${id}`);
    return p;
  }

  async contentType(id: string): Promise<string> {
    const meta = await sharp(this.pathOf(id, 'id')).metadata();
    return CONTENT_TYPES[meta.format ?? ''] ?? 'application/octet-stream';
  }

  /** Check and store image bytes; `field` names the request field in errors. */
  async store(bytes: Buffer, field: string): Promise<StoredUpload> {
    if (bytes.length === 0) throw new HttpError(400, `${field}: empty image`);
    if (bytes.length > this.limits.maxBytes) throw new HttpError(413, `${field}: image of ${bytes.length} bytes is over the ${this.limits.maxBytes}-byte limit`);
    let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
    try {
      meta = await sharp(bytes, { failOn: 'error' }).metadata();
    } catch {
      throw new HttpError(400, `${field}: not an image (expected PNG, JPEG, WebP, GIF or TIFF)`);
    }
    const { width = 0, height = 0, format = '' } = meta;
    if (!FORMATS.has(format)) throw new HttpError(400, `${field}: image format ${format || 'unknown'} is not accepted (PNG, JPEG, WebP, GIF or TIFF)`);
    if (width > this.limits.maxSide || height > this.limits.maxSide) {
      throw new HttpError(400, `${field}: image of ${width}x${height} is over the ${this.limits.maxSide}-pixel side limit`);
    }
    try {
      // Decode it once fully: a truncated or corrupt file fails here, not in a job.
      await sharp(bytes, { failOn: 'error' }).raw().toBuffer();
    } catch {
      throw new HttpError(400, `${field}: the image is damaged or truncated`);
    }
    const id = crypto.createHash('sha256').update(bytes).digest('hex');
    const p = path.join(this.dir, `${id}.img`);
    if (!fs.existsSync(p)) {
      const tmp = `${p}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, bytes);
      fs.renameSync(tmp, p);
    }
    return { id, width, height, format };
  }

  /** An ImageRef (upload id or data: URL) as a stored upload id. */
  async resolveRef(ref: string, field: string): Promise<string> {
    if (ID.test(ref)) { this.pathOf(ref, field); return ref; }
    const m = /^data:([\w/+.-]*)(;[\w=-]+)*;base64,/.exec(ref.slice(0, 200));
    if (!m) throw new HttpError(400, `${field}: expected an upload id (from POST /api/uploads) or a data:...;base64, URL`);
    const b64 = ref.slice(m[0].length);
    if (!/^[A-Za-z0-9+/=\s]*$/.test(b64)) throw new HttpError(400, `${field}: the data URL is not valid base64`);
    return (await this.store(Buffer.from(b64, 'base64'), field)).id;
  }
}

/** Plain base64 (A1111 sends images without the data: prefix) or a data URL, as bytes. */
export function base64Bytes(s: string, field: string): Buffer {
  const b64 = s.replace(/^data:[^,]*;base64,/, '');
  if (!/^[A-Za-z0-9+/=\s]*$/.test(b64.slice(0, 1 << 20))) throw new HttpError(400, `${field}: not base64`);
  return Buffer.from(b64, 'base64');
}
