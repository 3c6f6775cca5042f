/**
 * A benchmark dataset: reference images with one caption each, from
 *   - a JSONL file (or a folder holding one): lines {"image": "file.png", "caption": "..."}
 *     ("file_name" / "text" are accepted too); image paths resolve against the file's folder, or
 *   - COCO's annotation layout: captions_<split>.json ({images: [{id, file_name}], annotations:
 *     [{image_id, caption}]}) in the folder or its annotations/ subfolder, images in <split>/,
 *     images/ or beside the file. COCO gives five captions per image: the first annotation is used.
 * Entries keep the file's order; a missing image is kept as an entry whose file is absent, so the
 * benchmark lists it as skipped instead of dropping it silently.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { readCaptionJsonl, type CaptionLine } from '../io/caption-jsonl.js';

export interface BenchmarkEntry {
  /** Stable name of the reference, used for output file names. */
  readonly id: string;
  /** Resolved image path (may not exist: reported as skipped). */
  readonly image: string;
  readonly caption: string;
}

export interface BenchmarkDataset {
  /** The captions file read. */
  readonly source: string;
  readonly entries: BenchmarkEntry[];
}

const NO_CAPTIONS = 'no captions: expected a .jsonl of {"image", "caption"} lines, or COCO\'s annotations/captions_<split>.json';

const readJsonl = (file: string): CaptionLine[] => readCaptionJsonl(file).map((l) => ({ image: l.image, caption: l.caption.trim() }));

function readCoco(file: string): { image: string; caption: string }[] {
  let o: { images?: unknown; annotations?: unknown };
  try { o = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof o; } catch (e) { throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`); }
  if (!Array.isArray(o.images)) throw new FileFormatError(file, 'a COCO captions file needs an "images" array', 'images');
  if (!Array.isArray(o.annotations)) throw new FileFormatError(file, 'a COCO captions file needs an "annotations" array', 'annotations');
  const first = new Map<unknown, string>();
  for (const a of o.annotations as { image_id?: unknown; caption?: unknown }[]) {
    if (typeof a?.caption === 'string' && !first.has(a.image_id)) first.set(a.image_id, a.caption.trim());
  }
  const out: { image: string; caption: string }[] = [];
  for (const im of o.images as { id?: unknown; file_name?: unknown }[]) {
    const caption = first.get(im?.id);
    if (typeof im?.file_name === 'string' && caption !== undefined) out.push({ image: im.file_name, caption });
  }
  return out;
}

/** The captions file of a dataset folder (or the file itself). */
function captionsFile(data: string): string {
  if (!fs.existsSync(data)) throw new InputError(`--data ${data}: no such file or folder`);
  if (!fs.statSync(data).isDirectory()) return data;
  const list = (dir: string): string[] => (fs.existsSync(dir) && fs.statSync(dir).isDirectory() ? fs.readdirSync(dir).sort() : []);
  const jsonl = list(data).filter((f) => f.endsWith('.jsonl')).map((f) => path.join(data, f));
  const coco = [...list(data).map((f) => path.join(data, f)), ...list(path.join(data, 'annotations')).map((f) => path.join(data, 'annotations', f))]
    .filter((f) => /^captions.*\.json$/.test(path.basename(f)));
  const pick = jsonl[0] ?? coco[0];
  if (!pick) throw new InputError(`--data ${data}: ${NO_CAPTIONS}`);
  return pick;
}

/** Output-safe, unique names: the image's base name without extension. */
function uniqueIds(images: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return images.map((im) => {
    const base = path.basename(im, path.extname(im)).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '') || 'image';
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  });
}

export function loadBenchmarkDataset(data: string, limit?: number): BenchmarkDataset {
  const file = captionsFile(data);
  const raw = file.endsWith('.jsonl') ? readJsonl(file) : readCoco(file);
  if (raw.length === 0) throw new InputError(`--data ${data}: ${NO_CAPTIONS} (${file} holds none)`);
  const dir = path.dirname(file);
  const split = /^captions_(.+)\.json$/.exec(path.basename(file))?.[1];
  const roots = [dir, path.join(dir, 'images'), ...(split ? [path.join(dir, split), path.join(dir, '..', split)] : []), path.join(dir, '..', 'images')];
  const chosen = limit !== undefined ? raw.slice(0, limit) : raw;
  // A missing image is reported where it was expected: COCO's <split>/ folder, else beside the captions.
  const home = (split ? [path.join(dir, '..', split), path.join(dir, split)] : []).find((d) => fs.existsSync(d)) ?? dir;
  const resolved = chosen.map((r) => (path.isAbsolute(r.image) ? r.image : roots.map((d) => path.join(d, r.image)).find((c) => fs.existsSync(c)) ?? path.resolve(home, r.image)));
  const ids = uniqueIds(resolved);
  return { source: file, entries: chosen.map((r, i) => ({ id: ids[i]!, image: resolved[i]!, caption: r.caption })) };
}
