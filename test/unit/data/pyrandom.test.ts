import { describe, expect, it } from 'vitest'
import { PyRandom } from '../../../main/data/pyrandom'
import { bratsSplit } from '../../../main/data/splits'

// Reference values computed once with CPython 3.11 (`/usr/bin/python3`) and hard-coded here.
describe('PyRandom (CPython random.Random, bit-exact)', () => {
  it('matches random.Random(0).random() and getrandbits(32)', () => {
    const r = new PyRandom(0)
    expect([0, 1, 2, 3, 4].map(() => r.random())).toEqual([
      0.8444218515250481, 0.7579544029403025, 0.420571580830845, 0.25891675029296335,
      0.5112747213686085,
    ])
    const g = new PyRandom(0)
    expect([0, 1, 2, 3, 4].map(() => g.nextUint32())).toEqual([
      3626764237, 1654615998, 3255389356, 3823568514, 1806341205,
    ])
  })

  it('matches randrange, multi-word seeds, wide getrandbits and short getrandbits', () => {
    const r = new PyRandom(42)
    expect(Array.from({ length: 10 }, () => r.randrange(10))).toEqual([
      1, 0, 4, 3, 3, 2, 1, 8, 1, 9,
    ])
    const big = new PyRandom(2n ** 40n + 5n)
    expect([0, 1, 2].map(() => big.getrandbits(64))).toEqual([
      9535518150286577956n,
      12244916861145399977n,
      505956256775690464n,
    ])
    const s = new PyRandom(7)
    expect(Array.from({ length: 8 }, () => Number(s.getrandbits(5)))).toEqual([
      10, 30, 4, 12, 20, 1, 2, 26,
    ])
    expect(s.random()).toBe(0.5358820043066892)
  })

  it('shuffles exactly like random.Random(123).shuffle', () => {
    const x = Array.from({ length: 20 }, (_, i) => i)
    new PyRandom(123).shuffle(x)
    expect(x).toEqual([7, 17, 3, 4, 14, 12, 11, 9, 5, 10, 15, 6, 0, 16, 19, 18, 13, 2, 8, 1])
  })

  it('reproduces the BraTS validation IDs of dsd-spec §5', () => {
    const ids = Array.from({ length: 484 }, (_, i) => `BRATS_${String(i + 1).padStart(3, '0')}`)
    const split = bratsSplit([...ids].reverse())
    const val = split.folds[0].val.map((s) => Number(s.slice(6))).sort((a, b) => a - b)
    expect(val).toEqual([
      1, 8, 21, 32, 33, 38, 48, 49, 51, 52, 72, 76, 98, 105, 112, 125, 129, 133, 134, 145, 156, 159,
      162, 167, 170, 171, 182, 184, 198, 205, 208, 216, 223, 227, 242, 245, 249, 253, 259, 262, 267,
      273, 281, 283, 287, 291, 299, 309, 313, 314, 317, 321, 328, 343, 351, 361, 362, 364, 369, 374,
      387, 389, 402, 410, 415, 425, 427, 433, 442, 447, 450, 456,
    ])
    expect(split.test).toEqual(ids.slice(460))
    expect(split.folds[0].train).toHaveLength(388)
    expect(new Set([...split.folds[0].train, ...split.folds[0].val, ...split.test]).size).toBe(484)
  })
})
