/**
 * SHA-1 and SHA-256 (FIPS 180-4) for `node:crypto`'s createHash in the browser build: the library
 * keys sessions and caches by digests of configs and file fingerprints, synchronously, which the
 * browser's SubtleCrypto (async only) cannot do. Small inputs only; speed is not a goal.
 */

const K256 = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
const rotl = (x: number, n: number): number => (x << n) | (x >>> (32 - n));

/** The message padded to 64-byte blocks, as big-endian words. */
function blocks(msg: Uint8Array): Uint32Array {
  const n = Math.ceil((msg.length + 9) / 64) * 64;
  const b = new Uint8Array(n);
  b.set(msg);
  b[msg.length] = 0x80;
  const dv = new DataView(b.buffer);
  const bits = msg.length * 8;
  dv.setUint32(n - 8, Math.floor(bits / 2 ** 32));
  dv.setUint32(n - 4, bits >>> 0);
  const w = new Uint32Array(n / 4);
  for (let i = 0; i < w.length; i++) w[i] = dv.getUint32(i * 4);
  return w;
}

function sha256(msg: Uint8Array): Uint32Array {
  const h = Uint32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const m = blocks(msg), w = new Uint32Array(64);
  for (let o = 0; o < m.length; o += 16) {
    for (let t = 0; t < 64; t++) {
      if (t < 16) { w[t] = m[o + t]!; continue; }
      const a = w[t - 15]!, b = w[t - 2]!;
      w[t] = (w[t - 16]! + (rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)) + w[t - 7]! + (rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10))) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h as unknown as number[];
    for (let t = 0; t < 64; t++) {
      const t1 = (hh! + (rotr(e!, 6) ^ rotr(e!, 11) ^ rotr(e!, 25)) + ((e! & f!) ^ (~e! & g!)) + K256[t]! + w[t]!) >>> 0;
      const t2 = ((rotr(a!, 2) ^ rotr(a!, 13) ^ rotr(a!, 22)) + ((a! & b!) ^ (a! & c!) ^ (b! & c!))) >>> 0;
      hh = g; g = f; f = e; e = (d! + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((v, i) => { h[i] = (h[i]! + v!) >>> 0; });
  }
  return h;
}

function sha1(msg: Uint8Array): Uint32Array {
  const h = Uint32Array.from([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]);
  const m = blocks(msg), w = new Uint32Array(80);
  for (let o = 0; o < m.length; o += 16) {
    for (let t = 0; t < 80; t++) w[t] = t < 16 ? m[o + t]! : rotl(w[t - 3]! ^ w[t - 8]! ^ w[t - 14]! ^ w[t - 16]!, 1);
    let [a, b, c, d, e] = h as unknown as number[];
    for (let t = 0; t < 80; t++) {
      const [f, k] = t < 20 ? [(b! & c!) | (~b! & d!), 0x5a827999] : t < 40 ? [b! ^ c! ^ d!, 0x6ed9eba1] : t < 60 ? [(b! & c!) | (b! & d!) | (c! & d!), 0x8f1bbcdc] : [b! ^ c! ^ d!, 0xca62c1d6];
      const tmp = (rotl(a!, 5) + f + e! + k + w[t]!) >>> 0;
      e = d; d = c; c = rotl(b!, 30) >>> 0; b = a; a = tmp;
    }
    [a, b, c, d, e].forEach((v, i) => { h[i] = (h[i]! + v!) >>> 0; });
  }
  return h;
}

const ALGORITHMS: Record<string, (m: Uint8Array) => Uint32Array> = { sha1, sha256 };

/** createHash('sha1' | 'sha256'): update(string | bytes)..., digest('hex'). */
export class Hash {
  private readonly parts: Uint8Array[] = [];
  private readonly fn: (m: Uint8Array) => Uint32Array;

  constructor(algorithm: string) {
    const fn = ALGORITHMS[algorithm.toLowerCase()];
    if (!fn) throw new Error(`hash ${algorithm} is not available in the browser build of visprompt (sha1, sha256)`);
    this.fn = fn;
  }

  update(data: string | Uint8Array): this {
    this.parts.push(typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return this;
  }

  digest(encoding: 'hex'): string {
    const all = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of this.parts) { all.set(p, o); o += p.length; }
    if (encoding !== 'hex') throw new Error(`digest encoding ${encoding} is not available in the browser build (hex)`);
    return [...this.fn(all)].map((x) => x.toString(16).padStart(8, '0')).join('');
  }
}

export function createHash(algorithm: string): Hash { return new Hash(algorithm); }
