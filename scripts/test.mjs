#!/usr/bin/env node
// `npm test`: type-check, lint, build, then the unit, browser end-to-end and Electron suites.
// Ends with one summary line "tests: N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)
const reports = join(root, 'test', '.tmp', 'reports')
rmSync(reports, { recursive: true, force: true })
mkdirSync(reports, { recursive: true })
process.env.XDG_RUNTIME_DIR ??= join(root, 'test', '.tmp', 'xdg')
mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true })

const steps = []
function step(name, cmd, args) {
  console.log(`\n=== ${name}: ${[cmd, ...args].map((a) => a.replace(root + '/', '')).join(' ')}`)
  const t0 = Date.now()
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env })
  const ok = r.status === 0
  steps.push({ name, ok, seconds: (Date.now() - t0) / 1000 })
  return ok
}

const only = process.argv.slice(2)
const want = (s) => only.length === 0 || only.includes(s)

if (want('typecheck')) {
  step('typecheck (node)', bin('tsc'), ['-p', 'tsconfig.node.json', '--noEmit'])
  step('typecheck (renderer)', bin('vue-tsc'), ['-p', 'tsconfig.web.json', '--noEmit'])
}
if (want('lint')) step('lint', bin('eslint'), ['.'])
const built = want('e2e') || want('electron') ? step('build', process.execPath, ['scripts/build.mjs']) : true

const counts = { passed: 0, failed: 0, skipped: 0 }
/** Failed tests (file, name, first lines of the error), repeated in the summary at the end. */
const failures = []
function suite(project) {
  const out = join(reports, `${project}.json`)
  const ok = step(`tests (${project})`, bin('vitest'), [
    'run',
    '--project',
    project,
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${out}`,
  ])
  if (existsSync(out)) {
    const r = JSON.parse(readFileSync(out, 'utf8'))
    counts.passed += r.numPassedTests ?? 0
    counts.failed += r.numFailedTests ?? 0
    counts.skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
    for (const f of r.testResults ?? []) {
      const file = f.name ? relative(root, f.name) : '?'
      const failed = (f.assertionResults ?? []).filter((t) => t.status === 'failed')
      for (const t of failed) {
        const why = (t.failureMessages ?? []).join('\n').split('\n').slice(0, 6).join('\n      ')
        failures.push(`${project} ${file} › ${t.fullName ?? t.title}\n      ${why}`)
      }
      // A file that failed outside its tests (import error, hook timeout)
      if (f.status === 'failed' && !failed.length) failures.push(`${project} ${file}: ${(f.message ?? 'failed').split('\n').slice(0, 6).join('\n      ')}`)
    }
  } else if (!ok) {
    counts.failed += 1
  }
}
if (want('unit')) suite('unit')
if (want('e2e')) {
  if (built) suite('e2e')
  else steps.push({ name: 'tests (e2e): not run, the build failed', ok: false, seconds: 0 })
}
if (want('electron')) suite('electron')

console.log('\n=== summary')
for (const s of steps) console.log(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name} (${s.seconds.toFixed(1)} s)`)
const failedSteps = steps.filter((s) => !s.ok).length
if (failures.length) {
  console.log('failed tests:')
  for (const f of failures) console.log(`  ${f}`)
}
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
process.exit(failedSteps > 0 || counts.failed > 0 ? 1 : 0)
