/**
 * The README's command-line study runs as written on a fresh workspace: the lines of the
 * `sh` block after the `readme-study:short` marker are run one by one with bash, from a fresh
 * folder holding the project's `resources/` (as the project folder does), with `DSD_WORKSPACE`
 * a new empty workspace. `npx dsd` resolves to this checkout's bin/dsd.mjs — what npx does in
 * the project folder, without npx's own start-up. Then the study's results are checked: both
 * runs trained, both predicted on their validation cases, the comparison and the report.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('readme-study')
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

/** The command lines of the README's short study (comments and blank lines dropped by bash). */
export function readmeStudy(readme: string): string[] {
  const at = readme.indexOf('<!-- readme-study:short')
  if (at < 0) throw new Error('README.md has no readme-study:short block')
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))
  if (!m) throw new Error('README.md: no sh block after the readme-study:short marker')
  return m[1].split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))
}

describe('README command-line study', () => {
  it('runs as written on a fresh workspace and predicts and compares both runs', () => {
    const lines = readmeStudy(readFileSync(join(ROOT, 'README.md'), 'utf8'))
    expect(lines.every((l) => l.startsWith('npx dsd '))).toBe(true)
    const cwd = join(TMP, 'project')
    const ws = join(TMP, 'workspace')
    const shim = join(TMP, 'bin')
    mkdirSync(cwd, { recursive: true })
    mkdirSync(shim, { recursive: true })
    symlinkSync(join(ROOT, 'resources'), join(cwd, 'resources'))
    writeFileSync(
      join(shim, 'npx'),
      `#!/bin/sh\nif [ "$1" = dsd ]; then shift; exec "${process.execPath}" "${join(ROOT, 'bin', 'dsd.mjs')}" "$@"; fi\necho "npx shim: only npx dsd is expected here" >&2\nexit 9\n`,
    )
    chmodSync(join(shim, 'npx'), 0o755)
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${shim}:${process.env.PATH}`, DSD_WORKSPACE: ws }
    delete env.DSD_BACKEND // the backend a user gets
    const t0 = Date.now()
    const seconds: string[] = []
    for (const line of lines) {
      const t = Date.now()
      const r = spawnSync('bash', ['-c', line], { cwd, env, encoding: 'utf8', timeout: 600_000 })
      seconds.push(`${((Date.now() - t) / 1000).toFixed(1)} s  ${line.slice(0, 90)}`)
      expect(r.status, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0)
    }
    console.log(`README study: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${seconds.join('\n')}`)

    // a fresh workspace: the dataset under its own name, both runs completed
    expect(readdirSync(join(ws, 'datasets'))).toEqual(['hippo-study'])
    const runs = readdirSync(join(ws, 'runs')).sort()
    expect(runs).toEqual(['hippo-study-dynunet-quick-Basic-fold0', 'hippo-study-dynunet-quick-DSD-fold0'])
    const split = JSON.parse(readFileSync(join(ws, 'datasets', 'hippo-study', 'splits', 'k10.json'), 'utf8'))
    const val = [...split.folds[0].val].sort()
    for (const run of runs) {
      expect(JSON.parse(readFileSync(join(ws, 'runs', run, 'state.json'), 'utf8')).status).toBe('completed')
      // both runs predicted, on exactly their validation cases
      const preds = readdirSync(join(ws, 'runs', run, 'predictions', 'last')).filter((f) => f.endsWith('.nii.gz'))
      expect(preds.map((f) => f.replace('.nii.gz', '')).sort()).toEqual(val)
    }
    // the paired comparison covers those cases for both runs, and the report exists
    const cases = readFileSync(join(cwd, 'study', 'comparison.cases.csv'), 'utf8')
    for (const id of val) expect(cases).toContain(id)
    expect(existsSync(join(cwd, 'study', 'comparison.summary.csv'))).toBe(true)
    const report = readFileSync(join(cwd, 'study', 'report.html'), 'utf8')
    expect(report).toContain('hippo-study-dynunet-quick-Basic-fold0')
    expect(report).toContain('hippo-study-dynunet-quick-DSD-fold0')
  }, 900_000)
})
