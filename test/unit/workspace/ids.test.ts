/**
 * One id rule for every name that becomes a path: the contract, dataset manifests, split
 * files, run folders and case files all refuse '.', '..', hidden names and over-long ids.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { commands } from '../../../main/contract'
import { ID_MAX_LENGTH, isSafeId, SafeId, toSafeId } from '../../../main/contract/ids'
import { readManifest } from '../../../main/workspace/datasets'
import { readRunConfig } from '../../../main/workspace/runs'
import { splitPath } from '../../../main/workspace/splits'
import { tmpDir } from '../../helpers/shared'

const WS = tmpDir('ids')
afterAll(() => rmSync(WS, { recursive: true, force: true }))

const BAD = ['', '.', '..', '.hidden', '../x', 'a/b', 'a\\b', 'a b', 'x'.repeat(ID_MAX_LENGTH + 1), 'é', 'a\0b']
const GOOD = ['a', 'k5', 'hippocampus-sample-dynunet-small-DSD-fold0', 'case_001.v2', '-x', 'x'.repeat(ID_MAX_LENGTH)]

describe('safe ids', () => {
  it('isSafeId and the zod schema agree', () => {
    for (const s of BAD) {
      expect(isSafeId(s), s).toBe(false)
      expect(SafeId.safeParse(s).success, s).toBe(false)
    }
    for (const s of GOOD) {
      expect(isSafeId(s), s).toBe(true)
      expect(SafeId.safeParse(s).success, s).toBe(true)
    }
    expect(isSafeId(42)).toBe(false)
  })

  it('toSafeId always yields a safe id', () => {
    for (const s of [...BAD, ...GOOD, '..hidden', 'a/b c', '']) expect(isSafeId(toSafeId(s)), s).toBe(true)
    expect(toSafeId('case 1/a')).toBe('case_1_a')
  })

  it('the contract refuses unsafe ids in requests', () => {
    for (const runId of ['.', '..', '.x']) {
      expect(commands['runs.get'].request.safeParse({ runId }).success, runId).toBe(false)
    }
    expect(commands['runs.get'].request.safeParse({ runId: 'r1' }).success).toBe(true)
  })

  it('workspace readers refuse "." and ".." before touching the disk', async () => {
    mkdirSync(join(WS, 'runs'), { recursive: true })
    // a config.json at the workspace root must never be read as a run
    writeFileSync(join(WS, 'config.json'), '{}')
    for (const id of ['.', '..']) {
      await expect(readRunConfig(WS, id)).rejects.toMatchObject({ code: 'RUN_ID_INVALID' })
      await expect(readManifest(WS, id)).rejects.toMatchObject({ code: 'DATASET_ID_INVALID' })
      expect(() => splitPath(WS, 'd', id)).toThrow(/not allowed/)
    }
  })
})
