/**
 * CPython's `random.Random`, bit-exact for the parts the splits need: MT19937 seeded from an
 * integer through `init_by_array` (as `random.seed(int)` does), `getrandbits`, `_randbelow`,
 * `randrange`, `random()` and `shuffle`. Used so the BraTS split reproduces
 * `random.Random(0).shuffle` of the reference code exactly.
 */

const N = 624
const M = 397
const MATRIX_A = 0x9908b0df
const UPPER_MASK = 0x80000000
const LOWER_MASK = 0x7fffffff

/** A Python `random.Random(seed)` for integer seeds. */
export class PyRandom {
  private mt = new Uint32Array(N)
  private mti = N + 1

  constructor(seed: number | bigint = 0) {
    this.seed(seed)
  }

  /** `random.seed(n)` for an integer n: the key is |n| split into 32-bit words, low first. */
  seed(seed: number | bigint): void {
    let n = typeof seed === 'bigint' ? seed : BigInt(seed)
    if (typeof seed === 'number' && !Number.isInteger(seed)) {
      throw new RangeError(`PyRandom: seed must be an integer, got ${seed}`)
    }
    if (n < 0n) n = -n
    const key: number[] = []
    while (n > 0n) {
      key.push(Number(n & 0xffffffffn))
      n >>= 32n
    }
    if (key.length === 0) key.push(0)
    this.initByArray(key)
  }

  private initGenrand(s: number): void {
    const mt = this.mt
    mt[0] = s >>> 0
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0
    }
    this.mti = N
  }

  private initByArray(key: number[]): void {
    const mt = this.mt
    this.initGenrand(19650218)
    let i = 1
    let j = 0
    const len = key.length
    for (let k = Math.max(N, len); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0
      i++
      j++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
      if (j >= len) j = 0
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30)
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0
      i++
      if (i >= N) {
        mt[0] = mt[N - 1]
        i = 1
      }
    }
    mt[0] = 0x80000000
  }

  /** One tempered 32-bit output (`genrand_uint32`). */
  nextUint32(): number {
    const mt = this.mt
    if (this.mti >= N) {
      let kk = 0
      for (; kk < N - M; kk++) {
        const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK)
        mt[kk] = mt[kk + M] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK)
        mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)
      }
      const y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK)
      mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)
      this.mti = 0
    }
    let y = mt[this.mti++]
    y ^= y >>> 11
    y ^= (y << 7) & 0x9d2c5680
    y ^= (y << 15) & 0xefc60000
    y ^= y >>> 18
    return y >>> 0
  }

  /** `random.random()`: 53-bit float in [0, 1). */
  random(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }

  /** `random.getrandbits(k)` as a bigint (any k ≥ 0). */
  getrandbits(k: number): bigint {
    if (!Number.isInteger(k) || k < 0) throw new RangeError('getrandbits: k must be ≥ 0')
    if (k === 0) return 0n
    if (k <= 32) return BigInt(this.nextUint32() >>> (32 - k))
    let result = 0n
    let shift = 0n
    for (let left = k; left > 0; left -= 32) {
      let r = this.nextUint32()
      if (left < 32) r >>>= 32 - left
      result |= BigInt(r) << shift
      shift += 32n
    }
    return result
  }

  /** `_randbelow_with_getrandbits(n)`: uniform integer in [0, n), n ≥ 1 (n < 2^53). */
  randbelow(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError('randbelow: n must be a positive integer')
    const k = bitLength(n)
    if (k <= 32) {
      let r = this.nextUint32() >>> (32 - k)
      while (r >= n) r = this.nextUint32() >>> (32 - k)
      return r
    }
    let r = Number(this.getrandbits(k))
    while (r >= n) r = Number(this.getrandbits(k))
    return r
  }

  /** `random.randrange(start, stop)` (step 1); `randrange(stop)` when stop is omitted. */
  randrange(start: number, stop?: number): number {
    if (stop === undefined) return this.randbelow(start)
    return start + this.randbelow(stop - start)
  }

  /** `random.shuffle(x)` in place (Python ≥ 3.2 algorithm, no `random` argument). */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1)
      const t = x[i]
      x[i] = x[j]
      x[j] = t
    }
    return x
  }
}

function bitLength(n: number): number {
  let k = 0
  while (n >= 1) {
    n = Math.floor(n / 2)
    k++
  }
  return k
}
