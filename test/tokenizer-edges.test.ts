/**
 * CLIP tokenizer edges the goldens never reach (milliseconds): the CJK ideograph blocks of transformers'
 * BasicTokenizer._is_chinese_char at each block's first and last assigned code point and just outside, which
 * whitespace separates from letters around them; '\r' and the other cleaning rules; the BPE cache's seeded
 * special-token entries and its size bound; option and file edges (null entries, Infinity, a folder where a
 * file should be, an additional special token already added under another id, no special tokens at all).
 * Every expectation follows transformers' slow CLIPTokenizer without ftfy, worked out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { CLIPTokenizer, preTokenize } from '../src/io/clip-tokenizer.js';

const VOCAB = { a: 0, b: 1, 'a</w>': 2, 'b</w>': 3, 'ab</w>': 4, '<|startoftext|>': 5, '<|endoftext|>': 6, ab: 7 };
const MERGES = '#version: 0.2\na b</w>\n';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-tokedge-'));
let n = 0;
function folder(files: Record<string, unknown> = {}): string {
  const dir = path.join(root, `t${n++}`);
  fs.mkdirSync(dir);
  const all: Record<string, unknown> = { 'vocab.json': VOCAB, 'merges.txt': MERGES, ...files };
  for (const [name, body] of Object.entries(all)) fs.writeFileSync(path.join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
  return dir;
}
const hand = (): CLIPTokenizer => CLIPTokenizer.fromDir(folder());

test('CJK blocks: an ideograph becomes a word of its own at each block edge; letters outside the blocks stay joined', () => {
  const cp = (c: number): string => String.fromCodePoint(c);
  // The first and last code point of each block that is assigned (a letter) in Python 3.11's Unicode 14 and in
  // Node's ICU alike; 0x2B73F, 0x2B81F, 0x2CEAF, 0xFAFF and 0x2FA1F are unassigned (category Cn: removed as
  // control characters before the CJK rule) in Unicode 14, so those block ends cannot be seen.
  const inside = [0x4e00, 0x9fff, 0x3400, 0x4dbf, 0x20000, 0x2a6df, 0x2a700, 0x2b738, 0x2b740, 0x2b81d, 0x2b820, 0x2cea1];
  for (const c of inside) assert.deepEqual(preTokenize(`x${cp(c)}y`), ['x', cp(c), 'y'], c.toString(16));
  // CJK compatibility ideographs: spaced by their own code point first, then NFC maps them into the main block.
  assert.deepEqual(preTokenize('x\uf900y'), ['x', '\u8c48', 'y']);
  assert.deepEqual(preTokenize('x\ufad9y'), ['x', '\u9f8e', 'y']);
  assert.deepEqual(preTokenize(`x${cp(0x2f800)}y`), ['x', '\u4e3d', 'y']);
  assert.deepEqual(preTokenize(`x${cp(0x2fa1d)}y`), ['x', cp(0x2a600), 'y']);
  // Letters just outside the blocks (Yi, CJK Extension G, Latin ligature ff): no spacing, one word with x and y.
  for (const c of [0xa000, 0x30000, 0x2ceb0]) assert.deepEqual(preTokenize(`x${cp(c)}y`), [`x${cp(c)}y`], c.toString(16));
  assert.deepEqual(preTokenize('x\ufb00y'), ['x\ufb00y']);
  // Symbols just outside (category So): the CLIP regex's punctuation run, not a word split by the CJK rule.
  assert.deepEqual(preTokenize('x\u4dc0\u4dffy'), ['x', '\u4dc0\u4dff', 'y']);
});

test('cleaning: \\r splits words like \\t and \\n; an upper-case V is a letter, not a vertical tab', () => {
  assert.deepEqual(preTokenize('a\rb\tc\nd'), ['a', 'b', 'c', 'd']);
  assert.deepEqual(preTokenize('aVb'), ['avb']);
  // \v, \x1c-\x1f and \x85 are control characters: removed, so the letters around them join.
  assert.deepEqual(preTokenize('a\vb\x1cc\x85d'), ['abcd']);
});

test('BPE cache: the literal special-token text of any later word stays whole; the cache is cleared at 50,000 entries', () => {
  const tok = hand();
  // CLIPTokenizer seeds its cache with the two special tokens, so their lower-cased text is one token even after
  // other words went through BPE (not split out as an added token: that match is case-sensitive).
  assert.deepEqual(tok.tokenize('ab <|STARTOFTEXT|> ba <|EndOfText|>'), ['ab</w>', '<|startoftext|>', 'b', 'a</w>', '<|endoftext|>']);
  assert.deepEqual(tok.untruncatedIds('ab <|STARTOFTEXT|>'), [5, 4, 5, 6]);
  const cache = (tok as unknown as { cache: Map<string, string[]> }).cache;
  const word = (i: number): string => Array.from({ length: 4 }, (_, k) => String.fromCharCode(99 + (Math.floor(i / 24 ** k) % 24))).join('');
  const before = cache.size; // the two seeds and the words above
  const fill = 50_000 - before;
  tok.tokenize(Array.from({ length: fill }, (_, i) => word(i)).join(' '));
  assert.equal(cache.size, 50_000);
  assert.deepEqual(tok.tokenize(word(fill)), [...word(fill)].map((c, i) => (i === 3 ? `${c}</w>` : c)));
  assert.equal(cache.size, 1, 'a full cache is cleared before the next new word');
});

test('options and files: null entries are unset, Infinity refused, a folder in place of a file, an added id kept, max_length 2, no special tokens', () => {
  // null means unset (the defaults or the other file apply) instead of a crash.
  const nul = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { pad_token: null, bos_token: 'a' }, 'special_tokens_map.json': { bos_token: null, eos_token: null } }));
  assert.equal(nul.padToken, '<|endoftext|>');
  assert.equal(nul.bosToken, 'a');
  assert.equal(nul.eosTokenId, 6);
  // JSON 1e400 is Infinity: not an integer.
  const inf = folder({ 'tokenizer_config.json': '{"model_max_length": 1e400}' });
  assert.throws(() => CLIPTokenizer.fromDir(inf), (e: unknown) => e instanceof FileFormatError
    && e.message === `${path.join(inf, 'tokenizer_config.json')} [model_max_length]: expected an integer >= 2, got null`);
  // An unreadable optional file is reported as such, not as bad JSON.
  const dirAsFile = folder();
  fs.mkdirSync(path.join(dirAsFile, 'tokenizer_config.json'));
  assert.throws(() => CLIPTokenizer.fromDir(dirAsFile), (e: unknown) => e instanceof FileFormatError
    && e.message === `${path.join(dirAsFile, 'tokenizer_config.json')}: cannot read: EISDIR`);
  // An additional special token already in added_tokens_decoder keeps that id, not its vocabulary id (7).
  const kept = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { added_tokens_decoder: { 30: { content: 'ab' } }, additional_special_tokens: ['ab'] } }));
  assert.equal(kept.addedTokens.get('ab'), 30);
  assert.deepEqual(kept.untruncatedIds('abab'), [5, 30, 30, 6]);
  // max_length 2 is the least that holds BOS and EOS.
  assert.deepEqual(hand().encode('ab', 2), { input_ids: [5, 6], attention_mask: [1, 1], truncated: true });
  // Empty special tokens are never matched: with all four empty nothing is split out and BPE sees the whole text.
  const none = new CLIPTokenizer(hand().vocabulary, { bosToken: '', eosToken: '', unkToken: '', padToken: '' });
  assert.deepEqual(none.tokenize('ab b'), ['ab</w>', 'b</w>']);
  assert.equal(none.bosTokenId, 8);
});
