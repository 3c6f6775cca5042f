/**
 * CLIP byte-level BPE tokenizer, behaving exactly like transformers' slow `CLIPTokenizer` as the
 * Stable Diffusion pipelines call it (`padding='max_length', max_length=77, truncation=True`).
 *
 * Pre-tokenization follows the path transformers takes when `ftfy` is not installed (the default):
 * `BasicTokenizer(do_lower_case=True, strip_accents=False, do_split_on_punc=False)`, then the CLIP
 * regex, the bytes_to_unicode byte mapping and BPE over merges.txt with `</w>` word ends.
 * Added tokens (the special tokens, and e.g. SD 2.x's pad token `!`) are split out of the raw text
 * before anything else, as `PreTrainedTokenizer.tokenize` does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError } from '../errors.js';

export interface TokenizerEncoding {
  /** `[BOS] tokens.. [EOS] pad..`, exactly maxLength long. */
  input_ids: number[];
  /** 1 for BOS..EOS, 0 for padding. */
  attention_mask: number[];
  /** The prompt had more than maxLength - 2 tokens and was cut (diffusers warns about this). */
  truncated: boolean;
}

export interface CLIPTokenizerOptions {
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  /** Default max_length of `encode` (tokenizer_config's model_max_length). */
  modelMaxLength?: number;
  /** Tokens never split by BPE, content -> id (tokenizer_config's added_tokens_decoder). */
  addedTokens?: ReadonlyMap<string, number>;
}

/** The vocabulary and merge ranks: immutable, so tokenizers over the same files can share them. */
export class CLIPVocabulary {
  private constructor(
    readonly encoder: ReadonlyMap<string, number>,
    readonly decoder: ReadonlyMap<number, string>,
    /** `"first second"` -> merge priority (lower merges first). */
    readonly bpeRanks: ReadonlyMap<string, number>,
  ) {}

  /** `vocabJson`: the text of vocab.json; `mergesText`: the text of merges.txt. File names are for errors. */
  static parse(vocabJson: string, mergesText: string, vocabFile = 'vocab.json', mergesFile = 'merges.txt'): CLIPVocabulary {
    let raw: unknown;
    try {
      raw = JSON.parse(vocabJson);
    } catch (e) {
      throw new FileFormatError(vocabFile, `not valid JSON (${(e as Error).message})`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new FileFormatError(vocabFile, 'expected a JSON object mapping tokens to ids');
    }
    const encoder = new Map<string, number>();
    const decoder = new Map<number, string>();
    for (const [token, id] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
        throw new FileFormatError(vocabFile, `id must be a non-negative integer, got ${JSON.stringify(id)}`, token);
      }
      encoder.set(token, id);
      decoder.set(id, token);
    }
    if (encoder.size === 0) throw new FileFormatError(vocabFile, 'vocabulary is empty');

    // transformers: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1] -- the first line is the
    // `#version` header and CLIP caps the merges at 48894; a repeated pair keeps its last rank (dict()).
    const lines = mergesText.trim().split('\n').slice(1, 49152 - 256 - 2 + 1);
    const bpeRanks = new Map<string, number>();
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      const parts = line.split(/\s+/);
      if (parts.length !== 2) {
        throw new FileFormatError(mergesFile, `line ${i + 2}: expected two symbols separated by a space, got ${JSON.stringify(line)}`);
      }
      bpeRanks.set(`${parts[0]} ${parts[1]}`, i);
    }
    if (bpeRanks.size === 0) throw new FileFormatError(mergesFile, 'no merges (expected a `#version` line followed by `a b` pairs)');
    return new CLIPVocabulary(encoder, decoder, bpeRanks);
  }

  static fromFiles(vocabFile: string, mergesFile: string): CLIPVocabulary {
    return CLIPVocabulary.parse(readText(vocabFile), readText(mergesFile), vocabFile, mergesFile);
  }
}

/** The standard CLIP vocabulary shipped with the package (dist/src/io/ -> package root). */
export const BUNDLED_CLIP_DIR: string = fileURLToPath(new URL('../../../assets/clip/', import.meta.url));

let bundledVocabulary: CLIPVocabulary | undefined;

const DEFAULT_BOS = '<|startoftext|>';
const DEFAULT_EOS = '<|endoftext|>';
const DEFAULT_MAX_LENGTH = 77;
/** transformers writes int(1e30) when a tokenizer has no length limit. */
const NO_LIMIT_SENTINEL = 1e15;
const BPE_CACHE_LIMIT = 50_000;

export class CLIPTokenizer {
  readonly bosToken: string;
  readonly eosToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly unkTokenId: number;
  readonly padTokenId: number;
  readonly modelMaxLength: number;
  /** content -> id of every token split out before BPE (special tokens included). */
  readonly addedTokens: ReadonlyMap<string, number>;
  /** Added tokens by first UTF-16 unit, longest first (leftmost-longest match like transformers' Trie). */
  private readonly addedByFirst = new Map<string, string[]>();
  private readonly addedDecoder = new Map<number, string>();
  private readonly cache = new Map<string, string[]>();

  constructor(readonly vocabulary: CLIPVocabulary, options: CLIPTokenizerOptions = {}) {
    this.bosToken = options.bosToken ?? DEFAULT_BOS;
    this.eosToken = options.eosToken ?? DEFAULT_EOS;
    this.unkToken = options.unkToken ?? DEFAULT_EOS;
    // "hack to enable padding": CLIP pads with its EOS unless told otherwise.
    this.padToken = options.padToken ?? DEFAULT_EOS;
    const maxLength = options.modelMaxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`model_max_length must be an integer >= 2, got ${maxLength}`);
    this.modelMaxLength = maxLength;

    const added = new Map<string, number>(options.addedTokens ?? []);
    let nextId = vocabulary.encoder.size;
    for (const id of added.values()) nextId = Math.max(nextId, id + 1);
    // Special tokens become added tokens too (PreTrainedTokenizer.__init__); one missing from the
    // vocabulary gets a fresh id at the end, as transformers' add_tokens does.
    for (const tok of [this.bosToken, this.eosToken, this.unkToken, this.padToken]) {
      if (added.has(tok)) continue;
      const id = vocabulary.encoder.get(tok);
      added.set(tok, id ?? nextId++);
    }
    this.addedTokens = added;
    for (const [content, id] of added) {
      if (content === '') continue;
      this.addedDecoder.set(id, content);
      const list = this.addedByFirst.get(content[0]!) ?? [];
      list.push(content);
      list.sort((a, b) => b.length - a.length);
      this.addedByFirst.set(content[0]!, list);
    }
    this.bosTokenId = added.get(this.bosToken)!;
    this.eosTokenId = added.get(this.eosToken)!;
    this.unkTokenId = added.get(this.unkToken)!;
    this.padTokenId = added.get(this.padToken)!;
    // CLIPTokenizer seeds its BPE cache so literal special-token text (after lower-casing) passes through.
    this.cache.set('<|startoftext|>', ['<|startoftext|>']);
    this.cache.set('<|endoftext|>', ['<|endoftext|>']);
  }

  /**
   * A diffusers `tokenizer/` folder (vocab.json, merges.txt, optional tokenizer_config.json and
   * special_tokens_map.json, legacy added_tokens.json).
   */
  static fromDir(dir: string): CLIPTokenizer {
    let isDir = false;
    try {
      isDir = fs.statSync(dir).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw new FileFormatError(dir, 'tokenizer folder not found');
    const vocabFile = path.join(dir, 'vocab.json');
    const mergesFile = path.join(dir, 'merges.txt');
    for (const f of [vocabFile, mergesFile]) {
      if (!fs.existsSync(f)) throw new FileFormatError(f, `missing (the model folder has no tokenizer: ${dir})`);
    }
    const vocabulary = CLIPVocabulary.fromFiles(vocabFile, mergesFile);

    const configFile = path.join(dir, 'tokenizer_config.json');
    const mapFile = path.join(dir, 'special_tokens_map.json');
    const addedFile = path.join(dir, 'added_tokens.json');
    const config = readJsonObject(configFile) ?? {};
    const specialMap = readJsonObject(mapFile) ?? {};

    const addedTokens = new Map<string, number>();
    const decoderEntries = config['added_tokens_decoder'];
    if (decoderEntries !== undefined) {
      if (decoderEntries === null || typeof decoderEntries !== 'object' || Array.isArray(decoderEntries)) {
        throw new FileFormatError(configFile, 'expected an object {id: {content, ...}}', 'added_tokens_decoder');
      }
      for (const [idText, entry] of Object.entries(decoderEntries as Record<string, unknown>)) {
        const id = Number(idText);
        if (!Number.isInteger(id) || id < 0) throw new FileFormatError(configFile, `bad token id ${JSON.stringify(idText)}`, 'added_tokens_decoder');
        const content = tokenContent(entry, configFile, `added_tokens_decoder.${idText}`);
        if (content !== undefined) addedTokens.set(content, id);
      }
    }
    const legacyAdded = readJsonObject(addedFile);
    if (legacyAdded) {
      for (const [content, id] of Object.entries(legacyAdded)) {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new FileFormatError(addedFile, 'id must be a non-negative integer', content);
        if (!addedTokens.has(content)) addedTokens.set(content, id);
      }
    }

    // from_pretrained: with the newer added_tokens_decoder layout tokenizer_config.json is authoritative;
    // in the legacy layout special_tokens_map.json overrides it.
    const configFirst = decoderEntries !== undefined;
    const special = (key: string): string | undefined => {
      const fromConfig = tokenContent(config[key], configFile, key);
      const fromMap = tokenContent(specialMap[key], mapFile, key);
      return configFirst ? fromConfig ?? fromMap : fromMap ?? fromConfig;
    };
    const additional = configFirst ? config['additional_special_tokens'] ?? specialMap['additional_special_tokens']
      : specialMap['additional_special_tokens'] ?? config['additional_special_tokens'];
    if (Array.isArray(additional)) {
      for (const [i, entry] of additional.entries()) {
        const content = tokenContent(entry, configFirst ? configFile : mapFile, `additional_special_tokens.${i}`);
        if (content !== undefined && !addedTokens.has(content)) {
          const id = vocabulary.encoder.get(content);
          if (id !== undefined) addedTokens.set(content, id);
        }
      }
    }

    let modelMaxLength = DEFAULT_MAX_LENGTH;
    const mml = config['model_max_length'];
    if (mml !== undefined && mml !== null) {
      if (typeof mml !== 'number' || !Number.isFinite(mml) || mml < 2 || (mml < NO_LIMIT_SENTINEL && !Number.isInteger(mml))) {
        throw new FileFormatError(configFile, `expected an integer >= 2, got ${JSON.stringify(mml)}`, 'model_max_length');
      }
      if (mml < NO_LIMIT_SENTINEL) modelMaxLength = mml;
    }

    return new CLIPTokenizer(vocabulary, {
      bosToken: special('bos_token'),
      eosToken: special('eos_token'),
      unkToken: special('unk_token'),
      padToken: special('pad_token'),
      modelMaxLength,
      addedTokens,
    });
  }

  /**
   * The standard CLIP vocabulary shipped in assets/clip/, for single-file checkpoints without a
   * tokenizer folder. SD 1.x pads with `<|endoftext|>`, SD 2.x with `!`.
   */
  static bundled(options: { padToken?: string; modelMaxLength?: number } = {}): CLIPTokenizer {
    bundledVocabulary ??= CLIPVocabulary.fromFiles(path.join(BUNDLED_CLIP_DIR, 'vocab.json'), path.join(BUNDLED_CLIP_DIR, 'merges.txt'));
    return new CLIPTokenizer(bundledVocabulary, { padToken: options.padToken ?? DEFAULT_EOS, modelMaxLength: options.modelMaxLength });
  }

  get vocabSize(): number {
    return this.vocabulary.encoder.size;
  }

  /** BPE token strings (byte-level, `</w>` word ends), without BOS/EOS: transformers' `tokenize`. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const chunk of this.splitOnAddedTokens(text)) {
      if (chunk.added) out.push(chunk.text);
      else for (const word of preTokenize(chunk.text)) out.push(...this.bpe(byteEncode(word)));
    }
    return out;
  }

  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((t) => this.addedTokens.get(t) ?? this.vocabulary.encoder.get(t) ?? this.unkTokenId);
  }

  convertIdsToTokens(ids: readonly number[]): string[] {
    return ids.map((id) => this.addedDecoder.get(id) ?? this.vocabulary.decoder.get(id) ?? this.unkToken);
  }

  /** `[BOS] ids.. [EOS]` with no padding or truncation (for debugging and the truncation warning). */
  untruncatedIds(text: string): number[] {
    return [this.bosTokenId, ...this.convertTokensToIds(this.tokenize(text)), this.eosTokenId];
  }

  /** `tokenizer(text, padding='max_length', max_length=maxLength, truncation=True)`. */
  encode(text: string, maxLength: number = this.modelMaxLength): TokenizerEncoding {
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
    const ids = this.convertTokensToIds(this.tokenize(text));
    // Truncation removes from the end of the text tokens so that BOS and EOS still fit.
    const room = maxLength - 2;
    const truncated = ids.length > room;
    const body = truncated ? ids.slice(0, room) : ids;
    const input_ids = [this.bosTokenId, ...body, this.eosTokenId];
    const attention_mask = new Array<number>(input_ids.length).fill(1);
    while (input_ids.length < maxLength) {
      input_ids.push(this.padTokenId);
      attention_mask.push(0);
    }
    return { input_ids, attention_mask, truncated };
  }

  /**
   * transformers' Trie.split: added tokens are cut out of the raw text first (case-sensitive,
   * leftmost match, longest at that position), so e.g. SD 2.x's pad token `!` never reaches BPE.
   */
  private splitOnAddedTokens(text: string): { text: string; added: boolean }[] {
    const chunks: { text: string; added: boolean }[] = [];
    if (this.addedByFirst.size === 0) return [{ text, added: false }];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const candidates = this.addedByFirst.get(text[i]!);
      const hit = candidates?.find((c) => text.startsWith(c, i));
      if (hit === undefined) {
        i++;
        continue;
      }
      if (i > start) chunks.push({ text: text.slice(start, i), added: false });
      chunks.push({ text: hit, added: true });
      i += hit.length;
      start = i;
    }
    if (start < text.length) chunks.push({ text: text.slice(start), added: false });
    return chunks;
  }

  /** CLIPTokenizer.bpe on a byte-encoded word: greedy lowest-rank merges, `</w>` on the last symbol. */
  private bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const ranks = this.vocabulary.bpeRanks;
    let word = [...token];
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best: string | undefined;
      let bestRank = Infinity;
      for (let k = 0; k + 1 < word.length; k++) {
        const r = ranks.get(`${word[k]} ${word[k + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = `${word[k]} ${word[k + 1]}`;
        }
      }
      if (best === undefined) break;
      const [first, second] = best.split(' ') as [string, string];
      const merged: string[] = [];
      for (let k = 0; k < word.length; ) {
        if (word[k] === first && k + 1 < word.length && word[k + 1] === second) {
          merged.push(first + second);
          k += 2;
        } else {
          merged.push(word[k]!);
          k += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= BPE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }
}

// --- pre-tokenization -------------------------------------------------------------------------

/** CLIP's split regex (`re.IGNORECASE` in transformers, hence `i`). */
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/** Python's str.split() whitespace (str.isspace), which whitespace_tokenize uses. */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

/** BasicTokenizer._is_chinese_char: the CJK ideograph blocks transformers (and BERT) use. */
function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df)
    || (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf)
    || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

function pyWhitespaceSplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((w) => w !== '');
}

/**
 * BasicTokenizer(do_lower_case=True, strip_accents=False, do_split_on_punc=False).tokenize joined
 * with spaces, then split with the CLIP regex. strip_accents=False (not None) means lower-casing
 * does not strip accents, so `é` stays `é`.
 */
export function preTokenize(text: string): string[] {
  // _clean_text + _tokenize_chinese_chars: drop NUL, U+FFFD and category C (controls, format chars
  // like U+200B/U+200D, private use, unassigned, lone surrogates) except \t\n\r, which with Zs become spaces.
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') cleaned += ' ';
    else if (cp === 0 || cp === 0xfffd || CONTROL.test(ch)) continue;
    else if (SPACE_SEPARATOR.test(ch)) cleaned += ' ';
    else if (isChineseChar(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  const words = pyWhitespaceSplit(cleaned.normalize('NFC')).map((w) => w.toLowerCase());
  const joined = pyWhitespaceSplit(words.join(' ')).join(' ');
  // U+0345 (combining ypogegrammeni) is the one character whose class differs under case-insensitive
  // matching: Python's `regex` matches it with no alternative, so findall skips it, while JS /iu
  // folds it to a letter. Turning it into a separator reproduces the skip.
  return Array.from(joined.replace(/\u0345/g, ' ').matchAll(CLIP_PATTERN), (m) => m[0]);
}

/** bytes_to_unicode: printable bytes map to themselves, the rest to U+0100.. so BPE never sees whitespace/control. */
const BYTE_ENCODER: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
})();

function byteEncode(word: string): string {
  let out = '';
  for (const b of Buffer.from(word, 'utf8')) out += BYTE_ENCODER[b];
  return out;
}

// --- file helpers -----------------------------------------------------------------------------

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(file, code === 'ENOENT' ? 'missing' : `cannot read: ${code ?? String(e)}`);
  }
}

/** An optional JSON object file: undefined when absent, FileFormatError when malformed. */
function readJsonObject(file: string): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readText(file));
  } catch (e) {
    if (e instanceof FileFormatError) throw e;
    throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FileFormatError(file, 'expected a JSON object');
  return raw as Record<string, unknown>;
}

/** A special-token entry is a string or an AddedToken object `{content, lstrip, ...}`; null means unset. */
function tokenContent(entry: unknown, file: string, key: string): string | undefined {
  if (entry === undefined || entry === null) return undefined;
  if (typeof entry === 'string') return entry;
  if (typeof entry === 'object' && !Array.isArray(entry) && typeof (entry as { content?: unknown }).content === 'string') {
    return (entry as { content: string }).content;
  }
  throw new FileFormatError(file, 'expected a string or an object with a string `content`', key);
}
