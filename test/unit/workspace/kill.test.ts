/**
 * A kill at any moment of an import, a split or a run creation leaves the workspace listing
 * only complete entries, and creating the same name again succeeds. Real child processes
 * create entries in a loop and are SIGKILLed after seeded random delays; the workspace is then
 * checked entry by entry, swept, and the interrupted name created again.
 */
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DatasetService } from '../../../main/services/datasets'
import { listSplitNames, readSplit } from '../../../main/workspace/splits'
import { readRunConfig, readRunState } from '../../../main/workspace/runs'
import { sweepWorkspace } from '../../../main/workspace/sweep'
import { ROOT, sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('kill')
const WS = join(TMP, 'ws')
const SRC = join(TMP, 'pairs')
const SCRIPT = join(ROOT, 'test', 'unit', 'workspace', 'fixtures', 'create-loop.ts')

/** Seeded delays (ms after "ready"), so the kills land at different moments each round. */
function delays(seed: number, n: number, max: number): number[] {
  let x = seed
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return 20 + (x % max)
  })
}

/** Run the loop child, kill it `delay` ms after it is ready; the names it reported made. */
function runAndKill(args: string[], delay: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, WS, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (c) => {
      out += String(c)
      if (out.includes('ready\n') && !(child as { timer?: unknown }).timer) {
        ;(child as { timer?: unknown }).timer = setTimeout(() => child.kill('SIGKILL'), delay)
      }
    })
    child.stderr.on('data', (c) => (err += String(c)))
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) return reject(new Error(`child failed (${code}): ${err}`))
      resolve([...out.matchAll(/^made (\S+)$/gm)].map((m) => m[1]))
    })
  })
}

function hidden(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('.')) : []
}

beforeAll(async () => {
  mkdirSync(join(SRC, 'images'), { recursive: true })
  mkdirSync(join(SRC, 'labels'), { recursive: true })
  for (const id of ['001', '003', '004']) {
    copyFileSync(sharedPath('data', 'msd-task04-hippocampus', 'imagesTr', `hippocampus_${id}.nii.gz`), join(SRC, 'images', `c${id}.nii.gz`))
    copyFileSync(sharedPath('data', 'msd-task04-hippocampus', 'labelsTr', `hippocampus_${id}.nii.gz`), join(SRC, 'labels', `c${id}.nii.gz`))
  }
  mkdirSync(WS, { recursive: true })
})
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

describe('kills during creation leave only complete entries', () => {
  it('import', async () => {
    let next = 0
    for (const delay of delays(7, 2, 1500)) {
      const made = await runAndKill(['import', SRC, String(next), '40'], delay)
      const svc = new DatasetService(WS)
      const { datasets, broken } = await svc.listDatasets() // sweeps first, once per process
      expect(broken, JSON.stringify(broken)).toEqual([])
      const ids = datasets.map((d) => d.id)
      for (const m of made) expect(ids).toContain(m)
      for (const d of datasets) expect((await svc.getDataset(d.id)).cases).toHaveLength(3)
      await sweepWorkspace(WS)
      expect(hidden(join(WS, 'datasets'))).toEqual([])
      // the interrupted name is free: importing it again gives exactly that id
      next += made.length
      while (ids.includes(`d${next}`)) next++ // made but killed before it said so
      const again = await svc.importDataset(SRC, { layout: 'pairs', name: `d${next}` })
      expect(again.manifest.id).toBe(`d${next}`)
      next++
    }
  })

  it('split', async () => {
    const svc = new DatasetService(WS)
    let next = 0
    for (const delay of delays(11, 2, 800)) {
      const made = await runAndKill(['split', 'd0', String(next), '400'], delay)
      const names = await listSplitNames(WS, 'd0')
      for (const n of names) await readSplit(WS, 'd0', n) // every listed split parses
      for (const m of made) expect(names).toContain(m)
      await sweepWorkspace(WS)
      expect(hidden(join(WS, 'datasets', 'd0', 'splits'))).toEqual([])
      next += made.length
      while ((await listSplitNames(WS, 'd0')).includes(`s${next}`)) next++ // made but not yet reported
      const s = await svc.createSplit('d0', { folds: 2, seed: 1, name: `s${next}` })
      expect(s.name).toBe(`s${next}`)
      next++
    }
  })

  it('run', async () => {
    let next = 0
    let interrupted = 0
    for (const delay of delays(13, 3, 800)) {
      const made = await runAndKill(['run', 'd0', String(next), '400'], delay)
      // a kill inside a creation leaves its staging folder (hidden, never listed)
      interrupted += hidden(join(WS, 'runs')).length
      const dirs = readdirSync(join(WS, 'runs')).filter((n) => !n.startsWith('.'))
      for (const id of dirs) {
        await readRunConfig(WS, id)
        expect((await readRunState(WS, id)).status).toBe('queued')
      }
      for (const m of made) expect(dirs).toContain(m)
      await sweepWorkspace(WS)
      expect(hidden(join(WS, 'runs'))).toEqual([])
      next = Math.max(next + made.length, ...dirs.map((d) => Number(d.slice(1)) + 1))
      const [again] = await runAndKill(['run', 'd0', String(next), '1'], 60_000)
      expect(again).toBe(`r${next}`)
      next++
    }
    console.log(`run kills that landed inside a creation: ${interrupted} of 3`)
  })

  it('the sweep clears what an old-style killed import left (a dataset folder holding only a temp file)', async () => {
    const dir = join(WS, 'datasets', 'old')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, '.manifest.json.999999.0badc0de.tmp'), '{"trunc')
    const r = await sweepWorkspace(WS)
    expect(r.removed).toContain(dir)
    const svc = new DatasetService(WS)
    expect((await svc.importDataset(SRC, { layout: 'pairs', name: 'old' })).manifest.id).toBe('old')
  })
})
