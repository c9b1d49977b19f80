import { describe, expect, it } from 'vitest'
import {
  kfoldSplit,
  mmwhsSplit,
  parseSplitFile,
  serializeSplit,
  splitHash,
  validateSplit,
} from '../../../main/data/splits'

const ids = Array.from({ length: 23 }, (_, i) => `case_${String(i).padStart(2, '0')}`)

describe('k-fold', () => {
  it('puts every case in exactly one validation fold, folds differ by ≤ 1, no leakage', () => {
    const s = kfoldSplit(ids, { folds: 5, seed: 3 })
    const vals = s.folds.flatMap((f) => f.val)
    expect(vals.sort()).toEqual([...ids].sort())
    const sizes = s.folds.map((f) => f.val.length)
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
    for (const f of s.folds) {
      expect(f.train.filter((x) => f.val.includes(x))).toEqual([])
      expect(f.train.length + f.val.length).toBe(ids.length)
    }
    expect(validateSplit(s, ids)).toEqual([])
  })

  it('is deterministic per seed and differs between seeds', () => {
    expect(kfoldSplit(ids, { folds: 4, seed: 1 }).hash).toBe(
      kfoldSplit([...ids].reverse(), { folds: 4, seed: 1 }).hash,
    )
    expect(kfoldSplit(ids, { folds: 4, seed: 1 }).hash).not.toBe(
      kfoldSplit(ids, { folds: 4, seed: 2 }).hash,
    )
  })

  it('keeps a patient on one side and holds out test cases', () => {
    const groups = { P1: ['case_00', 'case_01', 'case_02'], P2: ['case_03', 'case_04'] }
    const s = kfoldSplit(ids, { folds: 3, seed: 0, groups, test: ['case_22'] })
    for (const f of s.folds) {
      for (const members of Object.values(groups)) {
        const inVal = members.filter((m) => f.val.includes(m)).length
        expect(inVal === 0 || inVal === members.length).toBe(true)
      }
      expect(f.train).not.toContain('case_22')
      expect(f.val).not.toContain('case_22')
    }
    expect(s.test).toEqual(['case_22'])
    expect(validateSplit(s, ids, groups)).toEqual([])
  })

  it('rejects impossible requests with clear errors', () => {
    expect(() => kfoldSplit(ids.slice(0, 3), { folds: 5, seed: 0 })).toThrow(
      /cannot make 5 folds from 3 cases/,
    )
    expect(() => kfoldSplit(ids, { folds: 1, seed: 0 })).toThrow(/folds must be an integer ≥ 2/)
    expect(() => kfoldSplit(['a', 'a'], { folds: 2, seed: 0 })).toThrow(/listed twice/)
  })
})

describe('MMWHS preset', () => {
  it('validates 4 consecutive sorted volumes per fold', () => {
    const cases = Array.from({ length: 20 }, (_, i) => `ct_train_${1001 + i}`)
    const s = mmwhsSplit([...cases].reverse(), { sortKey: (c) => `${c}_image.nii.gz` })
    expect(s.folds).toHaveLength(5)
    expect(s.folds[0].val).toEqual(cases.slice(0, 4))
    expect(s.folds[3].val).toEqual([
      'ct_train_1013',
      'ct_train_1014',
      'ct_train_1015',
      'ct_train_1016',
    ])
    expect(s.folds[4].train).toEqual(cases.slice(0, 16))
    expect(s.seed).toBeNull()
    expect(validateSplit(s, cases)).toEqual([])
  })
})

describe('split files', () => {
  it('hash ignores order but not membership; round trip through JSON', () => {
    const s = kfoldSplit(ids, { folds: 3, seed: 9 })
    const shuffled = {
      ...s,
      folds: s.folds.map((f) => ({ train: [...f.train].reverse(), val: [...f.val].reverse() })),
    }
    expect(splitHash(shuffled)).toBe(s.hash)
    const { split, hashMatches } = parseSplitFile(serializeSplit(s), 'x.json')
    expect(hashMatches).toBe(true)
    expect(split.folds).toEqual(s.folds)
    const moved = {
      ...s,
      folds: [
        { train: s.folds[0].train.slice(1), val: [...s.folds[0].val, s.folds[0].train[0]] },
        ...s.folds.slice(1),
      ],
    }
    expect(splitHash(moved)).not.toBe(s.hash)
  })

  it('detects edits: leakage, missing cases, unknown IDs, split patients', () => {
    const s = kfoldSplit(ids, { folds: 3, seed: 0 })
    const text = serializeSplit(s).replace(`"${s.folds[0].val[0]}"`, `"${s.folds[0].train[0]}"`)
    const { split, hashMatches } = parseSplitFile(text, 'edited.json')
    expect(hashMatches).toBe(false)
    const msgs = validateSplit(split, ids).map((p) => p.message)
    expect(msgs.some((m) => /in both train and val of fold 0; this leaks/.test(m))).toBe(true)
    expect(msgs.some((m) => /fold 0 leaves out 1 case/.test(m))).toBe(true)
    const bad = { ...s, folds: [{ train: [...s.folds[0].train, 'nope'], val: s.folds[0].val }] }
    expect(
      validateSplit(bad, ids)
        .map((p) => p.message)
        .join('\n'),
    ).toMatch(/names "nope", which is not a case/)
    const groups = { P: [s.folds[0].val[0], s.folds[0].train[0]] }
    expect(
      validateSplit(s, ids, groups).some(
        (p) => p.severity === 'error' && /patient "P" is split/.test(p.message),
      ),
    ).toBe(true)
  })

  it('rejects damaged JSON naming the file', () => {
    expect(() => parseSplitFile('{"format": "dsd-split", ', '/ws/splits/a.json')).toThrow(
      /\/ws\/splits\/a.json: not valid JSON/,
    )
    expect(() => parseSplitFile('{"format": "other"}', 'b.json')).toThrow(
      /b.json: "format" must be "dsd-split"/,
    )
  })
})
