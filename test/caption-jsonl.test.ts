/** readCaptionJsonl: image/caption pairs, the Hugging Face image-folder spellings, blank lines, every refusal (ms). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { readCaptionJsonl } from '../src/io/caption-jsonl.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-jsonl-'));
let n = 0;
function file(text: string): string {
  const p = path.join(root, `c${n++}.jsonl`);
  fs.writeFileSync(p, text);
  return p;
}

test('pairs in order; file_name / text accepted; image and caption win over them; blank and CRLF lines', () => {
  const p = file([
    '{"image": "a.png", "caption": "a cat"}',
    '',
    '   ',
    '{"file_name": "b.png", "text": " a dog "}\r',
    '{"image": "c.png", "file_name": "x.png", "caption": "", "text": "y", "extra": 1}',
    '',
  ].join('\n'));
  assert.deepEqual(readCaptionJsonl(p), [
    { image: 'a.png', caption: 'a cat' },
    { image: 'b.png', caption: ' a dog ' },
    { image: 'c.png', caption: '' },
  ]);
  assert.deepEqual(readCaptionJsonl(file('')), []);
});

test('refusals name the file, the 1-based line (blank lines counted) and the key', () => {
  const refused = (text: string, message: string, key?: string): void => {
    const p = file(text);
    assert.throws(() => readCaptionJsonl(p), (e: unknown) => {
      assert.ok(e instanceof FileFormatError, String(e));
      assert.equal(e.file, p);
      assert.equal(e.key, key);
      assert.equal(e.message, `${p}${key === undefined ? '' : ` [${key}]`}: ${message}`);
      return true;
    });
  };
  const ok = '{"image": "a.png", "caption": "c"}';
  refused(`${ok}\n\n{"image": "b.png", "caption": 5}`, 'line 3: expected a string "caption" (or "text"), got 5', 'caption');
  refused(`${ok}\n{"image": 7, "caption": "c"}`, 'line 2: expected a string "image" (or "file_name"), got 7', 'image');
  refused('{"caption": "c"}', 'line 1: expected a string "image" (or "file_name"), got undefined', 'image');
  refused('{"image": "a.png"}', 'line 1: expected a string "caption" (or "text"), got undefined', 'caption');
  refused('null', 'line 1: expected a string "image" (or "file_name"), got undefined', 'image');
  const bad = file(`${ok}\n{"image": "a.png",`);
  assert.throws(() => readCaptionJsonl(bad), (e: unknown) => e instanceof FileFormatError && e.file === bad
    && e.message.startsWith(`${bad}: line 2 is not JSON (`) && e.message.endsWith(')') && !e.message.includes('\n'));
});
