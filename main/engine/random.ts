/**
 * The app's one seeded pseudo-random generator: xoshiro128** (32-bit state words, period
 * 2^128 − 1) seeded through splitmix32. It draws the weight initialisation (`Rng.derive`) and
 * everything random in a training epoch — case order, crop centres, augmentation
 * (`Rng.seeded(mixSeed(seed, 'epoch', e))`, main/training/batches.ts). The whole state
 * (including a cached Box–Muller spare) exports to plain JSON and imports back.
 *
 * No TensorFlow.js here: data/ code takes a generator through a structural interface
 * (main/data/sampling.ts `Rng`), so any caller can pass this one.
 *
 * This is not CPython's or PyTorch's generator: it reproduces runs of this app, not of the
 * reference code (for CPython's MT19937 see main/data/pyrandom.ts).
 */

/** JSON-serialisable generator state. */
export interface RngState {
  algorithm: 'xoshiro128**'
  s: [number, number, number, number]
  /** Cached second Box–Muller normal, or null. */
  spare: number | null
}

function splitmix32(seed: number): () => number {
  let x = seed >>> 0
  return () => {
    x = (x + 0x9e3779b9) >>> 0
    let z = x
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/**
 * Hash a seed and any number of integer or string keys into one 32-bit seed (FNV-1a over the
 * bytes, then one splitmix32 step): `mixSeed(seed, 'epoch', 3)` seeds epoch 3 of a run.
 */
export function mixSeed(seed: number, ...keys: (number | string)[]): number {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  const feed = (v: number) => {
    for (let shift = 0; shift < 32; shift += 8) h = Math.imul(h ^ ((v >>> shift) & 0xff), 0x01000193) >>> 0
  }
  feed(Math.floor(seed / 2 ** 32) >>> 0)
  for (const k of keys) {
    if (typeof k === 'number') {
      feed(k >>> 0)
      feed(Math.floor(k / 2 ** 32) >>> 0)
    } else {
      for (let i = 0; i < k.length; i++) feed(k.charCodeAt(i))
      feed(0xffffffff)
    }
  }
  return splitmix32(h)()
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** A seeded generator. Not thread-safe; give each worker or purpose its own (see {@link Rng.derive}). */
export class Rng {
  private s: Uint32Array
  private spare: number | null = null

  /** Seed with any integer (only the low 32 bits of each of `seed` and `stream` are used). */
  constructor(seed = 0, stream = 0) {
    const a = splitmix32(seed)
    const b = splitmix32((stream >>> 0) ^ 0x6a09e667)
    this.s = new Uint32Array([a(), a(), (a() ^ b()) >>> 0, (a() ^ b()) >>> 0])
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1
  }

  /**
   * A generator seeded by one integer, all 53 bits of it (the high 32 are folded into the
   * low). The stream of the training epochs (`Rng.seeded(mixSeed(seed, 'epoch', e))`).
   */
  static seeded(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng.seeded: seed must be an integer, got ${seed}`)
    const next = splitmix32((seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x27d4eb2d))
    const r = new Rng(0)
    r.s = new Uint32Array([next(), next(), next(), next()])
    if ((r.s[0]! | r.s[1]! | r.s[2]! | r.s[3]!) === 0) r.s[0] = 1
    return r
  }

  /** An independent generator for a named purpose (e.g. 'init', 'augment'), derived from a seed. */
  static derive(seed: number, purpose: string): Rng {
    let h = 0x811c9dc5
    for (let i = 0; i < purpose.length; i++) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193)
    return new Rng(seed, h >>> 0)
  }

  /** Rebuild a generator from {@link Rng.state}. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0)
    r.setState(state)
    return r
  }

  /** The current state (a copy; JSON-serialisable). */
  state(): RngState {
    const [a, b, c, d] = this.s
    return { algorithm: 'xoshiro128**', s: [a!, b!, c!, d!], spare: this.spare }
  }

  /** Restore a state from {@link Rng.state}. */
  setState(state: RngState): void {
    if (state.algorithm !== 'xoshiro128**' || !Array.isArray(state.s) || state.s.length !== 4) {
      throw new Error(`Rng.setState: not an xoshiro128** state: ${JSON.stringify(state)}`)
    }
    this.s = new Uint32Array(state.s.map((v) => v >>> 0))
    this.spare = state.spare ?? null
  }

  /** Next uniform 32-bit unsigned integer. */
  uint32(): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0
    const t = (s[1]! << 9) >>> 0
    s[2] = s[2]! ^ s[0]!
    s[3] = s[3]! ^ s[1]!
    s[1] = s[1]! ^ s[2]!
    s[0] = s[0]! ^ s[3]!
    s[2] = s[2]! ^ t
    s[3] = rotl(s[3]!, 11)
    return result
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.uint32() >>> 5 // 27 bits
    const lo = this.uint32() >>> 6 // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992
  }

  /** Uniform double in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.random()
  }

  /** Uniform integer in [0, n) without modulo bias (n ≤ 2^32). */
  int(n: number): number {
    if (!(n >= 1) || n > 4294967296 || !Number.isInteger(n)) {
      throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`)
    }
    const limit = 4294967296 - (4294967296 % n)
    for (;;) {
      const x = this.uint32()
      if (x < limit) return x % n
    }
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.random() < p
  }

  /** Normal sample (Box–Muller; the second value of each pair is cached in the state). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare
      this.spare = null
      return mean + std * z
    }
    let u = 0
    while (u === 0) u = this.random()
    const v = this.random()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spare = r * Math.sin(2 * Math.PI * v)
    return mean + std * r * Math.cos(2 * Math.PI * v)
  }

  /** `n` uniform samples in [lo, hi) as a Float32Array. */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi)
    return out
  }

  /** `n` normal samples as a Float32Array. */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std)
    return out
  }

  /** Fisher–Yates shuffle in place; returns `arr`. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const t = arr[i]!
      arr[i] = arr[j]!
      arr[j] = t
    }
    return arr
  }
}
