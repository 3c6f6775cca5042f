/**
 * Image/caption pairs for training: a JSONL of {"image", "caption"} lines, a COCO-Captions JSON
 * ({images: [{id, file_name}], annotations: [{image_id, caption}]}), or a folder holding one such file.
 * Image paths resolve against the data file's folder (and its `images/` subfolder for COCO layouts).
 * Pairs whose image is missing are skipped and counted, never fatal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { readCaptionJsonl } from '../io/caption-jsonl.js';

export interface CaptionPair {
  readonly image: string;
  readonly caption: string;
}

export interface CaptionDataset {
  readonly source: string;
  readonly pairs: CaptionPair[];
  /** Pairs dropped because their image file does not exist. */
  readonly missingImages: number;
}

function parseCoco(file: string): { image: string; caption: string }[] {
  let o: { images?: { id: number; file_name: string }[]; annotations?: { image_id: number; caption: string }[] };
  try { o = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof o; } catch (e) { throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`); }
  if (!Array.isArray(o.images) || !Array.isArray(o.annotations)) throw new FileFormatError(file, 'a COCO captions file needs "images" and "annotations" arrays');
  const names = new Map(o.images.map((im) => [im.id, im.file_name]));
  return o.annotations.flatMap((a) => (names.has(a.image_id) && typeof a.caption === 'string' ? [{ image: names.get(a.image_id)!, caption: a.caption.trim() }] : []));
}

export function loadCaptionDataset(data: string): CaptionDataset {
  if (!fs.existsSync(data)) throw new InputError(`--data not found: ${data}`);
  let file = data;
  if (fs.statSync(data).isDirectory()) {
    const candidates = fs.readdirSync(data).filter((f) => f.endsWith('.jsonl') || /captions.*\.json$/.test(f) || f.endsWith('.json'));
    const annotations = fs.existsSync(path.join(data, 'annotations')) ? fs.readdirSync(path.join(data, 'annotations')).filter((f) => /captions.*\.json$/.test(f)).map((f) => path.join('annotations', f)) : [];
    const pick = [...candidates, ...annotations][0];
    if (!pick) throw new InputError(`--data folder ${data} has no .jsonl or COCO captions .json file`);
    file = path.join(data, pick);
  }
  const raw = file.endsWith('.jsonl') ? readCaptionJsonl(file) : parseCoco(file);
  const roots = [path.dirname(file), path.dirname(path.dirname(file)), path.join(path.dirname(file), 'images'), path.join(path.dirname(path.dirname(file)), 'images')];
  const pairs: CaptionPair[] = [];
  let missing = 0;
  const found = new Map<string, string | null>();
  for (const r of raw) {
    let p = found.get(r.image);
    if (p === undefined) {
      p = path.isAbsolute(r.image) ? (fs.existsSync(r.image) ? r.image : null) : roots.map((d) => path.join(d, r.image)).find((c) => fs.existsSync(c)) ?? null;
      found.set(r.image, p);
    }
    if (p) pairs.push({ image: p, caption: r.caption });
    else missing++;
  }
  return { source: file, pairs, missingImages: missing };
}
