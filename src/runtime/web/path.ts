/**
 * `node:path` (POSIX) for the browser build: the library joins and splits the virtual paths of the
 * mounted model files (src/runtime/web/fs.ts), which are all absolute and '/'-separated.
 */
export const sep = '/';
export const delimiter = ':';

export function normalize(p: string): string {
  const abs = p.startsWith('/');
  const parts: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..' && parts.length && parts[parts.length - 1] !== '..') parts.pop();
    else if (s !== '..' || !abs) parts.push(s);
  }
  const out = (abs ? '/' : '') + parts.join('/');
  // a trailing slash stays, as Node's normalize keeps it
  return (out || (abs ? '/' : '.')) + (parts.length && p.endsWith('/') ? '/' : '');
}

export function join(...ps: string[]): string { return normalize(ps.filter((p) => p !== '').join('/') || '.'); }

/** Relative paths resolve against '/', the virtual file system's only working directory. */
export function resolve(...ps: string[]): string {
  let out = '';
  for (let i = ps.length - 1; i >= 0 && !out.startsWith('/'); i--) out = out ? `${ps[i]}/${out}` : ps[i]!;
  return normalize(out.startsWith('/') ? out : `/${out}`);
}

export function isAbsolute(p: string): boolean { return p.startsWith('/'); }

export function dirname(p: string): string {
  const s = p.replace(/\/+$/, '');
  if (s === '' && p.startsWith('/')) return '/';
  const i = s.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : s.slice(0, i);
}

export function basename(p: string, ext?: string): string {
  const b = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}

export function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter(Boolean), b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array<string>(a.length - i).fill('..'), ...b.slice(i)].join('/');
}

export function parse(p: string): { root: string; dir: string; base: string; ext: string; name: string } {
  const base = basename(p), ext = extname(p);
  return { root: p.startsWith('/') ? '/' : '', dir: dirname(p), base, ext, name: ext ? base.slice(0, -ext.length) : base };
}

const path = { sep, delimiter, normalize, join, resolve, isAbsolute, dirname, basename, extname, relative, parse, posix: {} as object };
path.posix = path;
export default path;
