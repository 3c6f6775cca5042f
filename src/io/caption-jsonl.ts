/** Image/caption pairs from a JSONL file: `{"image", "caption"}` per line (`file_name` / `text` accepted, as Hugging Face image folders write). */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';

export interface CaptionLine { image: string; caption: string }

export function readCaptionJsonl(file: string): CaptionLine[] {
  const out: CaptionLine[] = [];
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: unknown;
    try { o = JSON.parse(line); } catch (e) { throw new FileFormatError(file, `line ${i + 1} is not JSON (${(e as Error).message})`); }
    const r = (o ?? {}) as Record<string, unknown>;
    const image = r['image'] ?? r['file_name'], caption = r['caption'] ?? r['text'];
    if (typeof image !== 'string') throw new FileFormatError(file, `line ${i + 1}: expected a string "image" (or "file_name"), got ${JSON.stringify(image)}`, 'image');
    if (typeof caption !== 'string') throw new FileFormatError(file, `line ${i + 1}: expected a string "caption" (or "text"), got ${JSON.stringify(caption)}`, 'caption');
    out.push({ image, caption });
  });
  return out;
}
