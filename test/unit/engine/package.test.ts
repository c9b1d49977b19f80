// The engine as a library: `dsd-studio/engine` is compiled JavaScript that plain Node imports
// (no tsx), and the README's example runs as written.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { ROOT, tmpDir } from '../../helpers/shared'

const node = (args: string[], cwd = ROOT) =>
  spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, DSD_BACKEND: 'cpu' } })

describe('dsd-studio/engine from plain Node', () => {
  beforeAll(() => {
    // What `npm ci` runs (prepare); rebuilt here so the test checks the current sources.
    const r = node(['scripts/build.mjs', 'engine'])
    expect(r.status, r.stderr).toBe(0)
  }, 300_000)

  it('imports with node and exposes the API', () => {
    const r = node(['-e', "import('dsd-studio/engine').then(m => console.log(typeof m.createModel, typeof m.dsdLoss, m.OUTPUT_NAMES.join(',')))"])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('function function Y,D4,D3,D2,D1,E1,E2,E3,E4')
  })

  it("runs the README's example as written", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## The engine as a library'))
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1]
    expect(code, 'README: the engine section has a ```js example').toBeTruthy()
    const dir = tmpDir('engine-example')
    mkdirSync(dir, { recursive: true })
    const file = join(dir, 'example.mjs')
    writeFileSync(file, code!)
    const r = node([file], dir)
    expect(r.status, r.stderr).toBe(0)
    const m = /DSD loss (\S+) (\d+) terms/.exec(r.stdout)
    expect(m, r.stdout).toBeTruthy()
    expect(Number.isFinite(Number(m![1])) && Number(m![1]) > 0).toBe(true)
    expect(Number(m![2])).toBe(11)
  })

  it('ships TypeScript declarations for the export', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    const types = pkg.exports['./engine'].types as string
    const dts = readFileSync(join(ROOT, types), 'utf8')
    expect(dts).toContain('createModel')
    expect(dts).toContain('dsdLoss')
  })
})
