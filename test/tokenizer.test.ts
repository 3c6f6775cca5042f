import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIPTokenizer, preTokenize } from '../src/io/clip-tokenizer.js';
import { FileFormatError } from '../src/errors.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');

interface GoldenCase {
  text: string;
  input_ids: number[];
  attention_mask: number[];
  untruncated_ids: number[];
  bpe_tokens?: string[];
}
interface Golden {
  bos_token_id: number;
  eos_token_id: number;
  pad_token: string;
  pad_token_id: number;
  model_max_length: number;
  cases: GoldenCase[];
}

function loadGolden(model: string): Golden {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'goldens', model, 'tokenizer.json'), 'utf8')) as Golden;
}

function checkHeader(tok: CLIPTokenizer, golden: Golden): void {
  assert.equal(golden.cases.length, 25);
  assert.equal(tok.bosTokenId, golden.bos_token_id);
  assert.equal(tok.eosTokenId, golden.eos_token_id);
  assert.equal(tok.padToken, golden.pad_token);
  assert.equal(tok.padTokenId, golden.pad_token_id);
  assert.equal(tok.modelMaxLength, golden.model_max_length);
}

function checkCase(tok: CLIPTokenizer, c: GoldenCase, maxLength: number): void {
  const enc = tok.encode(c.text);
  assert.deepEqual(enc.input_ids, c.input_ids, 'input_ids');
  assert.deepEqual(enc.attention_mask, c.attention_mask, 'attention_mask');
  assert.deepEqual(tok.untruncatedIds(c.text), c.untruncated_ids, 'untruncated_ids');
  assert.equal(enc.truncated, c.untruncated_ids.length > maxLength, 'truncated');
  if (c.bpe_tokens) assert.deepEqual([tok.bosToken, ...tok.tokenize(c.text), tok.eosToken], c.bpe_tokens, 'bpe_tokens');
}

const caseLabel = (i: number, c: GoldenCase): string => `#${i} ${JSON.stringify(c.text).slice(0, 50)}`;

for (const model of ['tiny-sd15', 'tiny-sd21']) {
  test(`${model}: tokenizer goldens (fromDir)`, async (t) => {
    const golden = loadGolden(model);
    const tok = CLIPTokenizer.fromDir(path.join(FIXTURES, 'models', model, 'tokenizer'));
    checkHeader(tok, golden);
    for (const [i, c] of golden.cases.entries()) {
      await t.test(caseLabel(i, c), () => checkCase(tok, c, golden.model_max_length));
    }
  });
}

test('bundled tokenizer equals fromDir (sd15) and matches the goldens with either pad token', () => {
  const fromDir = CLIPTokenizer.fromDir(path.join(FIXTURES, 'models', 'tiny-sd15', 'tokenizer'));
  const bundled = CLIPTokenizer.bundled({ padToken: '<|endoftext|>' });
  assert.equal(bundled.vocabSize, 49408);
  assert.equal(bundled.vocabSize, fromDir.vocabSize);
  assert.deepEqual([...bundled.vocabulary.encoder], [...fromDir.vocabulary.encoder]);
  assert.deepEqual([...bundled.vocabulary.bpeRanks], [...fromDir.vocabulary.bpeRanks]);
  for (const [model, tok] of [['tiny-sd15', bundled], ['tiny-sd21', CLIPTokenizer.bundled({ padToken: '!' })]] as const) {
    // SD 2.x convention: `!` (id 0) pads and, being an added token, is split out of prompts.
    const golden = loadGolden(model);
    checkHeader(tok, golden);
    for (const [i, c] of golden.cases.entries()) {
      assert.doesNotThrow(() => checkCase(tok, c, golden.model_max_length), `${model} ${caseLabel(i, c)}`);
    }
  }
});

// Not under mutation testing (Stryker's hook defines __stryker__): instrumented code on a busy machine is slow,
// and a mutant must not count as killed by the clock.
const UNDER_STRYKER = (globalThis as Record<string, unknown>).__stryker__ !== undefined;
test('construction is fast', { skip: UNDER_STRYKER && 'timing is meaningless under mutation testing' }, () => {
  const dir = path.join(FIXTURES, 'models', 'tiny-sd15', 'tokenizer');
  CLIPTokenizer.fromDir(dir); // warm the file cache and JIT
  const t0 = performance.now();
  CLIPTokenizer.fromDir(dir);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `fromDir took ${ms.toFixed(0)} ms`);
});

test('truncation keeps max_length - 2 tokens then EOS', () => {
  const tok = CLIPTokenizer.bundled();
  const enc = tok.encode('a b c d e', 5);
  assert.deepEqual(enc.input_ids, [49406, 320, 321, 322, 49407]);
  assert.deepEqual(enc.attention_mask, [1, 1, 1, 1, 1]);
  assert.equal(enc.truncated, true);
  const exact = tok.encode('a b c', 5);
  assert.equal(exact.truncated, false);
});

test('pre-tokenization: cleaning, CJK spacing, whitespace and lower-casing', () => {
  assert.deepEqual(preTokenize('A\u200bB\u0000C\ufffd d\u3000E\u2028f'), ['abc', 'd', 'e', 'f']);
  assert.deepEqual(preTokenize('東京x'), ['東', '京', 'x']);
  assert.deepEqual(preTokenize("IT'S"), ['it', "'s"]);
  assert.deepEqual(preTokenize('<|ENDOFTEXT|>'), ['<|endoftext|>']);
  // NFC: a decomposed é becomes the composed one.
  assert.deepEqual(preTokenize('cafe\u0301'), ['café']);
  // Python's `regex` (IGNORECASE) matches a lone U+0345 with no alternative, so findall skips it;
  // after α, NFC composes it into ᾳ first.
  assert.deepEqual(preTokenize('a\u0345b \u03b1\u0345'), ['a', 'b', '\u1fb3']);
});

test('missing or malformed tokenizer files give a FileFormatError naming the file', () => {
  const src = path.join(FIXTURES, 'models', 'tiny-sd15', 'tokenizer');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-tok-'));
  try {
    fs.copyFileSync(path.join(src, 'merges.txt'), path.join(dir, 'merges.txt'));
    assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => {
      assert.ok(e instanceof FileFormatError);
      assert.equal(e.file, path.join(dir, 'vocab.json'));
      assert.match(e.message, /vocab\.json: missing/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    fs.writeFileSync(path.join(dir, 'vocab.json'), '{"a": 0,');
    assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => e instanceof FileFormatError && e.file === path.join(dir, 'vocab.json'));
    fs.writeFileSync(path.join(dir, 'vocab.json'), '{"a": "zero"}');
    assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => e instanceof FileFormatError && e.key === 'a');
    fs.copyFileSync(path.join(src, 'vocab.json'), path.join(dir, 'vocab.json'));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{"pad_token": 5}');
    assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => e instanceof FileFormatError && e.key === 'pad_token');
    fs.rmSync(path.join(dir, 'tokenizer_config.json'));
    fs.rmSync(path.join(dir, 'merges.txt'));
    assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => e instanceof FileFormatError && e.file === path.join(dir, 'merges.txt'));
    assert.throws(() => CLIPTokenizer.fromDir(path.join(dir, 'nope')), FileFormatError);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
