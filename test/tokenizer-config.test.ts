/**
 * The tokenizer folder's optional files, on a hand-made 9-token vocabulary whose every output is worked out
 * by hand: which of tokenizer_config.json / special_tokens_map.json wins (transformers: the config when it has
 * added_tokens_decoder, the map in the legacy layout), added_tokens.json, additional_special_tokens,
 * model_max_length (int(1e30) means "no limit"), fresh ids for special tokens missing from the vocabulary,
 * the merges cap (48894) and every malformed-file error (one line naming the file and the key).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { CLIPTokenizer, CLIPVocabulary } from '../src/io/clip-tokenizer.js';

const VOCAB = { a: 0, b: 1, 'a</w>': 2, 'b</w>': 3, 'ab</w>': 4, '<|startoftext|>': 5, '<|endoftext|>': 6, ab: 7, '<|startoftext|></w>': 8 };
// "ab" -> [a, b</w>] -> merge "a b</w>" -> ab</w>; "ba" -> [b, a</w>] (no merge).
const MERGES = '#version: 0.2\na b</w>\n';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-tokcfg-'));
let n = 0;
function folder(files: Record<string, unknown> = {}): string {
  const dir = path.join(root, `t${n++}`);
  fs.mkdirSync(dir);
  const all: Record<string, unknown> = { 'vocab.json': VOCAB, 'merges.txt': MERGES, ...files };
  for (const [name, body] of Object.entries(all)) if (body !== undefined) fs.writeFileSync(path.join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
  return dir;
}
function refused(fn: () => unknown, file: string, message: string, key?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `a FileFormatError, got ${String(e)}`);
    assert.equal(e.message, `${file}${key === undefined ? '' : ` [${key}]`}: ${message}`);
    return true;
  });
}

test('hand vocabulary: BPE merges by rank, BOS/EOS around, EOS pads by default, truncation keeps max_length - 2', () => {
  const tok = CLIPTokenizer.fromDir(folder());
  assert.deepEqual(tok.tokenize('ab ba'), ['ab</w>', 'b', 'a</w>']);
  assert.deepEqual(tok.encode('ab ba', 7), { input_ids: [5, 4, 1, 2, 6, 6, 6], attention_mask: [1, 1, 1, 1, 1, 0, 0], truncated: false });
  assert.deepEqual(tok.encode('ab ba', 4), { input_ids: [5, 4, 1, 6], attention_mask: [1, 1, 1, 1], truncated: true });
  assert.equal(tok.modelMaxLength, 77);
  // Unknown BPE pieces and ids map to the unknown token (CLIP: <|endoftext|>).
  assert.deepEqual(tok.convertTokensToIds(['zz', 'ab</w>']), [6, 4]);
  assert.deepEqual(tok.convertIdsToTokens([4, 99, 5]), ['ab</w>', '<|endoftext|>', '<|startoftext|>']);
  assert.throws(() => tok.encode('ab', 1), { name: 'RangeError', message: 'maxLength must be an integer >= 2, got 1' });
  assert.throws(() => new CLIPTokenizer(tok.vocabulary, { modelMaxLength: 1 }), { name: 'RangeError', message: 'model_max_length must be an integer >= 2, got 1' });
  assert.throws(() => new CLIPTokenizer(tok.vocabulary, { modelMaxLength: 2.5 }), RangeError);
});

test('legacy layout: special_tokens_map.json overrides tokenizer_config.json; a special token is split out of the text', () => {
  const tok = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { pad_token: 'a', unk_token: { content: 'b' } }, 'special_tokens_map.json': { pad_token: 'b' } }));
  assert.equal(tok.padToken, 'b');
  assert.equal(tok.padTokenId, 1);
  assert.equal(tok.unkTokenId, 1);
  // "b" is now an added token: "ab" -> "a" (BPE: a</w>), "b" (added).
  assert.deepEqual(tok.tokenize('ab'), ['a</w>', 'b']);
  assert.deepEqual(tok.encode('ab', 5).input_ids, [5, 2, 1, 6, 1]);
});

test('added_tokens_decoder layout: tokenizer_config.json wins; a special token missing from the vocabulary gets the next free id', () => {
  const decoder = { 6: { content: '<|endoftext|>' }, 20: { content: '<x>' } };
  const tok = CLIPTokenizer.fromDir(folder({
    'tokenizer_config.json': { added_tokens_decoder: decoder, pad_token: { content: 'a' }, bos_token: '<s>' },
    'special_tokens_map.json': { pad_token: 'b', bos_token: '<|startoftext|>' },
  }));
  assert.equal(tok.padToken, 'a');
  assert.equal(tok.padTokenId, 0);
  assert.equal(tok.bosToken, '<s>');
  assert.equal(tok.bosTokenId, 21, 'after the highest added id (20), not the vocabulary size (9)');
  assert.deepEqual(tok.untruncatedIds('b<x>'), [21, 3, 20, 6]);
  // Without added ids above it a missing special token takes the vocabulary size.
  assert.equal(CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { bos_token: '<s>' } })).bosTokenId, 9);
  // With BOS / EOS renamed, literal "<|startoftext|>" text is not an added token: the seeded BPE cache keeps it whole.
  // (unk and pad default to <|endoftext|>: renamed too, so no special token is left in the text.)
  const renamed = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: '</s>' } }));
  assert.deepEqual(renamed.tokenize('<|startoftext|> <|endoftext|>'), ['<|startoftext|>', '<|endoftext|>']);
  // Fresh ids in the order BOS, EOS, UNK, PAD, each after the previous.
  assert.deepEqual([renamed.bosTokenId, renamed.eosTokenId, renamed.unkTokenId, renamed.padTokenId], [9, 10, 11, 10]);
});

test('added_tokens.json (legacy) and additional_special_tokens (only those in the vocabulary); longest added token first', () => {
  const tok = CLIPTokenizer.fromDir(folder({
    'added_tokens.json': { '<y': 30, '<yy>': 31, '<|endoftext|>': 40 },
    'special_tokens_map.json': { additional_special_tokens: ['ab', 'zz'] },
  }));
  assert.equal(tok.eosTokenId, 40, 'added_tokens.json gives the special token its id');
  assert.deepEqual(tok.untruncatedIds('<yy><y'), [5, 31, 30, 40]);
  assert.equal(tok.addedTokens.get('ab'), 7);
  assert.equal(tok.addedTokens.has('zz'), false);
  assert.deepEqual(tok.tokenize('xab'), ['x</w>', 'ab']);
  // added_tokens_decoder entries win over added_tokens.json for the same content.
  const both = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { added_tokens_decoder: { 25: '<y' } }, 'added_tokens.json': { '<y': 30 } }));
  assert.equal(both.addedTokens.get('<y'), 25);
  // In the added_tokens_decoder layout the config's additional_special_tokens are read first.
  const cfg = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { added_tokens_decoder: {}, additional_special_tokens: ['b'] }, 'special_tokens_map.json': { additional_special_tokens: ['ab'] } }));
  assert.equal(cfg.addedTokens.get('b'), 1);
  assert.equal(cfg.addedTokens.has('ab'), false);
});

test('model_max_length: an integer >= 2, int(1e30) is "no limit" (77), null is unset', () => {
  const mml = (v: unknown) => CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { model_max_length: v } })).modelMaxLength;
  assert.equal(mml(16), 16);
  assert.equal(mml(2), 2);
  assert.equal(mml(1e30), 77);
  assert.equal(mml(1e15 + 0.5), 77);
  assert.equal(mml(null), 77);
  for (const [v, shown] of [[1.5, '1.5'], ['77', '"77"'], [1, '1'], [0, '0']] as const) {
    const dir = folder({ 'tokenizer_config.json': { model_max_length: v } });
    refused(() => CLIPTokenizer.fromDir(dir), path.join(dir, 'tokenizer_config.json'), `expected an integer >= 2, got ${shown}`, 'model_max_length');
  }
});

test('malformed optional files: one-line errors naming the file and the key', () => {
  const cases: [Record<string, unknown>, string, string, string?][] = [
    [{ 'tokenizer_config.json': { added_tokens_decoder: [1] } }, 'tokenizer_config.json', 'expected an object {id: {content, ...}}', 'added_tokens_decoder'],
    [{ 'tokenizer_config.json': { added_tokens_decoder: null } }, 'tokenizer_config.json', 'expected an object {id: {content, ...}}', 'added_tokens_decoder'],
    [{ 'tokenizer_config.json': { added_tokens_decoder: { x: '<x>' } } }, 'tokenizer_config.json', 'bad token id "x"', 'added_tokens_decoder'],
    [{ 'tokenizer_config.json': { added_tokens_decoder: { '-1': '<x>' } } }, 'tokenizer_config.json', 'bad token id "-1"', 'added_tokens_decoder'],
    [{ 'tokenizer_config.json': { added_tokens_decoder: { 7: 5 } } }, 'tokenizer_config.json', 'expected a string or an object with a string `content`', 'added_tokens_decoder.7'],
    [{ 'tokenizer_config.json': { pad_token: { content: 5 } } }, 'tokenizer_config.json', 'expected a string or an object with a string `content`', 'pad_token'],
    [{ 'special_tokens_map.json': { eos_token: ['x'] } }, 'special_tokens_map.json', 'expected a string or an object with a string `content`', 'eos_token'],
    [{ 'special_tokens_map.json': { additional_special_tokens: ['ab', 3] } }, 'special_tokens_map.json', 'expected a string or an object with a string `content`', 'additional_special_tokens.1'],
    [{ 'added_tokens.json': { '<y>': -1 } }, 'added_tokens.json', 'id must be a non-negative integer', '<y>'],
    [{ 'added_tokens.json': { '<y>': 1.5 } }, 'added_tokens.json', 'id must be a non-negative integer', '<y>'],
    [{ 'added_tokens.json': { '<y>': '3' } }, 'added_tokens.json', 'id must be a non-negative integer', '<y>'],
    [{ 'tokenizer_config.json': [1] }, 'tokenizer_config.json', 'expected a JSON object'],
    [{ 'special_tokens_map.json': 'null' }, 'special_tokens_map.json', 'expected a JSON object'],
    [{ 'added_tokens.json': '"x"' }, 'added_tokens.json', 'expected a JSON object'],
  ];
  for (const [files, file, message, key] of cases) {
    const dir = folder(files);
    refused(() => CLIPTokenizer.fromDir(dir), path.join(dir, file), message, key);
  }
  const dir = folder({ 'tokenizer_config.json': '{bad' });
  assert.throws(() => CLIPTokenizer.fromDir(dir), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${path.join(dir, 'tokenizer_config.json')}: not valid JSON (`));
  const missing = path.join(root, 'nowhere');
  refused(() => CLIPTokenizer.fromDir(missing), missing, 'tokenizer folder not found');
  const file = path.join(folder(), 'vocab.json');
  refused(() => CLIPTokenizer.fromDir(file), file, 'tokenizer folder not found');
  const noVocab = folder({ 'vocab.json': undefined });
  refused(() => CLIPTokenizer.fromDir(noVocab), path.join(noVocab, 'vocab.json'), `missing (the model folder has no tokenizer: ${noVocab})`);
  const noMerges = folder();
  fs.rmSync(path.join(noMerges, 'merges.txt'));
  refused(() => CLIPTokenizer.fromDir(noMerges), path.join(noMerges, 'merges.txt'), `missing (the model folder has no tokenizer: ${noMerges})`);
  refused(() => CLIPVocabulary.fromFiles(path.join(root, 'v.json'), path.join(root, 'm.txt')), path.join(root, 'v.json'), 'missing');
  const vdir = folder();
  refused(() => CLIPVocabulary.fromFiles(vdir, path.join(vdir, 'merges.txt')), vdir, 'cannot read: EISDIR');
});

test('vocab.json and merges.txt: shape errors with line numbers; blank lines skipped; a repeated pair keeps its last rank; merges capped at 48894', () => {
  const parse = (v: string, m = MERGES) => CLIPVocabulary.parse(v, m, 'V', 'M');
  refused(() => parse('[1]'), 'V', 'expected a JSON object mapping tokens to ids');
  refused(() => parse('null'), 'V', 'expected a JSON object mapping tokens to ids');
  refused(() => parse('{}'), 'V', 'vocabulary is empty');
  refused(() => parse('{"a": -1}'), 'V', 'id must be a non-negative integer, got -1', 'a');
  refused(() => parse('{"a": 1.5}'), 'V', 'id must be a non-negative integer, got 1.5', 'a');
  refused(() => parse('{"a": "1"}'), 'V', 'id must be a non-negative integer, got "1"', 'a');
  assert.throws(() => parse('{"a": 1'), (e: unknown) => e instanceof FileFormatError && e.message.startsWith('V: not valid JSON ('));
  refused(() => parse('{"a": 0}', '#version: 0.2\na b\n\nb c d\n'), 'M', 'line 4: expected two symbols separated by a space, got "b c d"');
  refused(() => parse('{"a": 0}', '#version: 0.2\n\n'), 'M', 'no merges (expected a `#version` line followed by `a b` pairs)');
  refused(() => parse('{"a": 0}', 'a b'), 'M', 'no merges (expected a `#version` line followed by `a b` pairs)');
  const v = parse('{"a": 0, "b": 1}', '#version: 0.2\n a  b \n\nb a\na b\n');
  assert.deepEqual([...v.bpeRanks], [['a b', 3], ['b a', 2]]);
  assert.deepEqual([...v.decoder], [[0, 'a'], [1, 'b']]);
  // transformers reads lines [1, 49152 - 256 - 2 + 1): a malformed line after the 48894th merge is never read.
  const lines = Array.from({ length: 48894 }, (_, i) => `x${i} y`);
  const capped = parse('{"a": 0}', ['#version: 0.2', ...lines, 'not a pair at all', 'p q'].join('\n'));
  assert.equal(capped.bpeRanks.size, 48894);
  assert.equal(capped.bpeRanks.get('x48893 y'), 48893);
  refused(() => parse('{"a": 0}', ['#version: 0.2', ...lines.slice(1), 'not a pair at all'].join('\n')), 'M', 'line 48895: expected two symbols separated by a space, got "not a pair at all"');
});

test('edge cases of the optional files: null / empty entries, id 0, fallbacks between the two files, the no-limit boundary', () => {
  // A null added_tokens_decoder entry is skipped; an empty one is kept but never matched nor decoded.
  const t = CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { added_tokens_decoder: { 7: null, 3: '' } }, 'added_tokens.json': { '<z>': 0 } }));
  assert.deepEqual(t.convertIdsToTokens([7, 3, 0]), ['ab', 'b</w>', '<z>']);
  assert.deepEqual(t.untruncatedIds('ab<z>'), [5, 4, 0, 6]);
  // additional_special_tokens: the other file is the fallback in both layouts; an entry already added keeps its id.
  assert.equal(CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { added_tokens_decoder: {} }, 'special_tokens_map.json': { additional_special_tokens: ['ab'] } })).addedTokens.get('ab'), 7);
  assert.equal(CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { additional_special_tokens: ['ab'] } })).addedTokens.get('ab'), 7);
  assert.equal(CLIPTokenizer.fromDir(folder({ 'added_tokens.json': { ab: 30 }, 'special_tokens_map.json': { additional_special_tokens: ['ab'] } })).addedTokens.get('ab'), 30);
  // model_max_length: 1e15 and above mean "no limit"; a non-integer above 2 is refused.
  const mml = (v: unknown) => CLIPTokenizer.fromDir(folder({ 'tokenizer_config.json': { model_max_length: v } })).modelMaxLength;
  assert.equal(mml(1e15), 77);
  assert.equal(mml(1e15 - 1), 1e15 - 1);
  const dir = folder({ 'tokenizer_config.json': { model_max_length: 2.5 } });
  refused(() => CLIPTokenizer.fromDir(dir), path.join(dir, 'tokenizer_config.json'), 'expected an integer >= 2, got 2.5', 'model_max_length');
  const five = folder({ 'tokenizer_config.json': { added_tokens_decoder: 5 } });
  refused(() => CLIPTokenizer.fromDir(five), path.join(five, 'tokenizer_config.json'), 'expected an object {id: {content, ...}}', 'added_tokens_decoder');
  // vocab.json: a JSON number is not a vocabulary; default file names in the errors; a leading blank line before
  // the #version header is stripped (transformers: read().strip()), so the header is never a merge.
  refused(() => CLIPVocabulary.parse('5', MERGES), 'vocab.json', 'expected a JSON object mapping tokens to ids');
  refused(() => CLIPVocabulary.parse('{"a": 0}', '#version: 0.2'), 'merges.txt', 'no merges (expected a `#version` line followed by `a b` pairs)');
  assert.deepEqual([...CLIPVocabulary.parse('{"a": 0}', '\n\n#version: 0.2\na b\n').bpeRanks], [['a b', 0]]);
});
