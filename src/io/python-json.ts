/**
 * JSON as Python's `json.dump` writes it: standard JSON plus the bare tokens `NaN`, `Infinity` and
 * `-Infinity` (diffusers saves `"lambda_min_clipped": -Infinity` in DPM-Solver scheduler configs).
 * Those tokens, outside strings, become the JavaScript numbers NaN, Infinity and -Infinity.
 */

// A string no real config holds: the tokens are swapped for it, then turned back into numbers.
const MARK = '\u0000python-json:';
const VALUES: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

/** `JSON.parse` that also accepts Python's NaN / Infinity / -Infinity (throws SyntaxError like JSON.parse). */
export function parsePythonJson(text: string): unknown {
  let out = '';
  let last = 0;
  let found = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      // skip the string literal, honouring escapes
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    const token = c === 'N' && text.startsWith('NaN', i) ? 'NaN'
      : c === 'I' && text.startsWith('Infinity', i) ? 'Infinity'
      : c === '-' && text.startsWith('-Infinity', i) ? '-Infinity' : undefined;
    if (token === undefined) continue;
    out += text.slice(last, i) + JSON.stringify(MARK + token);
    i += token.length - 1;
    last = i + 1;
    found = true;
  }
  if (!found) return JSON.parse(text);
  out += text.slice(last);
  return JSON.parse(out, (_key, v: unknown) => (typeof v === 'string' && v.startsWith(MARK) ? VALUES[v.slice(MARK.length)] ?? v : v));
}
