/**
 * A tiny seeded PRNG (xoshiro128**) for sampling and augmentation. Its whole state is four
 * 32-bit words, so a checkpoint can save it (`getState`) and a resumed run can continue the
 * exact same stream (`Prng.fromState`).
 */

/** Saved PRNG state: four unsigned 32-bit words. */
export type PrngState = [number, number, number, number]

/** splitmix32 step, used to expand a seed into the initial state. */
function splitmix32(x: number): [number, number] {
  const next = (x + 0x9e3779b9) >>> 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  z = (z ^ (z >>> 16)) >>> 0
  return [next, z]
}

/** Hash a seed and any number of integer or string keys into one 32-bit seed (FNV-1a + mix). */
export function mixSeed(seed: number, ...keys: (number | string)[]): number {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  const feed = (v: number) => {
    h = Math.imul(h ^ (v & 0xff), 0x01000193) >>> 0
    h = Math.imul(h ^ ((v >>> 8) & 0xff), 0x01000193) >>> 0
    h = Math.imul(h ^ ((v >>> 16) & 0xff), 0x01000193) >>> 0
    h = Math.imul(h ^ ((v >>> 24) & 0xff), 0x01000193) >>> 0
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
  return splitmix32(h)[1]
}

/** Seeded xoshiro128** generator with saveable state. */
export class Prng {
  private s: Uint32Array

  /** Seed with an integer (any JS safe integer; the same seed always gives the same stream). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed))
      throw new RangeError(`Prng: seed must be an integer, got ${seed}`)
    this.s = new Uint32Array(4)
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x27d4eb2d)
    for (let i = 0; i < 4; i++) {
      const [nx, z] = splitmix32(x)
      x = nx
      this.s[i] = z
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1
  }

  /** A generator that continues from a saved state. */
  static fromState(state: PrngState): Prng {
    if (!Array.isArray(state) || state.length !== 4 || state.some((v) => !Number.isInteger(v))) {
      throw new RangeError('Prng.fromState: state must be four 32-bit integers')
    }
    const p = new Prng(0)
    p.s.set(state.map((v) => v >>> 0))
    return p
  }

  /** The current state (a copy), to save in a checkpoint. */
  getState(): PrngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]]
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0
    const t = s[1] << 9
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 11)
    return result
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random()
  }

  /** Uniform integer in [0, n) without modulo bias (n ≤ 2^32). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new RangeError(`Prng.int: bad n ${n}`)
    const limit = 2 ** 32 - (2 ** 32 % n)
    let r = this.nextUint32()
    while (r >= limit) r = this.nextUint32()
    return r % n
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.random() < p
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const t = x[i]
      x[i] = x[j]
      x[j] = t
    }
    return x
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
