/**
 * Crash safety end to end, with real processes: `dsd train` on real hippocampus cases is
 * killed with SIGKILL in the middle of an epoch, `dsd resume` continues it, and the result
 * must equal an uninterrupted run exactly (weights bit for bit, log.jsonl byte for byte) on
 * the deterministic JS CPU backend. Also checks the job queue's pause/cancel and the
 * dead-worker state.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadCheckpoint, unpackTrainingState } from '../../../main/engine/checkpoint'
import { dsdCli, ROOT, tmpDir } from '../../helpers/shared'

const workspace = tmpDir('resume-ws')
const dsd = (args: string[]) => dsdCli(workspace, args)

// A tiny network and a short schedule: the test is about exactness, not accuracy.
const TRAIN = ['--dataset', 'hippocampus-sample', '--split', 'k10', '--folds', '0', '--variant', 'DSD',
  '--filters', '4,4,8,8,8', '--patch', '16', '--batch', '2', '--epochs', '3', '--steps-per-epoch', '3',
  '--validate-every', '2', '--backend', 'cpu', '--seed', '7', '--schedule', 'poly', '--warmup', '4']

function weights(runId: string): Map<string, Float32Array> {
  const file = join(workspace, 'runs', runId, 'checkpoints', 'last.ckpt')
  const state = unpackTrainingState(loadCheckpoint(file))
  const out = new Map<string, Float32Array>()
  for (const [k, t] of Object.entries(state.weights)) out.set(k, t.dataSync() as Float32Array)
  for (const [k, t] of Object.entries(state.optimizer?.tensors ?? {})) out.set(`opt/${k}`, t.dataSync() as Float32Array)
  return out
}

/** `dsd train` as a child process, SIGKILLed once epoch 1 is checkpointed and epoch 2 has taken a step. */
async function trainAndKillInEpoch2(name: string): Promise<void> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/dsd.mjs'), 'train', ...TRAIN, '--name', name, '--workspace', workspace], {
    env: { ...process.env, DSD_BACKEND: 'cpu', DSD_PROGRESS_INTERVAL_MS: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  const killed = await new Promise<boolean>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (/epoch 2 step 1\/3/.test(stderr)) {
        child.kill('SIGKILL')
        resolve(true)
      }
    })
    child.on('exit', () => resolve(false))
  })
  expect(killed, `the run ended before it could be killed:\n${stderr}`).toBe(true)
  await new Promise((r) => child.on('exit', r))
}

describe('training runs survive SIGKILL and a full disk', () => {
  beforeAll(() => {
    const imp = dsd(['import', join(ROOT, 'resources/sample/hippocampus')])
    expect(imp.status, imp.stderr).toBe(0)
    const split = dsd(['split', 'hippocampus-sample', '--folds', '10', '--seed', '0', '--name', 'k10'])
    expect(split.status, split.stderr).toBe(0)
  })

  it('resumes a run killed mid-epoch to exactly the weights and log of an uninterrupted run', { timeout: 1_200_000 }, async () => {
    const full = dsd(['train', ...TRAIN, '--name', 'straight', '--json'])
    expect(full.status, full.stderr).toBe(0)
    const straight = 'straight-DSD-fold0'
    const state = JSON.parse(readFileSync(join(workspace, 'runs', straight, 'state.json'), 'utf8'))
    expect(state).toMatchObject({ status: 'completed', epoch: 3 })

    // The same run again, killed once epoch 1 is checkpointed and epoch 2 has taken a step.
    await trainAndKillInEpoch2('killed')
    const victim = 'killed-DSD-fold0'
    const mid = JSON.parse(readFileSync(join(workspace, 'runs', victim, 'state.json'), 'utf8'))
    expect(mid).toMatchObject({ status: 'running', epoch: 1 })
    expect(readFileSync(join(workspace, 'runs', victim, 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1)
    // Worse still: as if the power had gone between the checkpoint's rename and the log write,
    // the epoch-1 lines of log.jsonl and timing.jsonl are gone. The checkpoint carries them.
    writeFileSync(join(workspace, 'runs', victim, 'log.jsonl'), '')
    writeFileSync(join(workspace, 'runs', victim, 'timing.jsonl'), '')

    const resumed = dsd(['resume', victim, '--json'])
    expect(resumed.status, resumed.stderr).toBe(0)
    expect(resumed.stderr).toMatch(/resuming after epoch 1/)

    const a = weights(straight)
    const b = weights(victim)
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort())
    const bytes = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    for (const [k, v] of a) expect(bytes(b.get(k)!).equals(bytes(v)), k).toBe(true)
    const logA = readFileSync(join(workspace, 'runs', straight, 'log.jsonl'), 'utf8')
    const logB = readFileSync(join(workspace, 'runs', victim, 'log.jsonl'), 'utf8')
    expect(logB).toBe(logA)
    const lines = logA.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines.map((l) => l.epoch)).toEqual([1, 2, 3])
    expect(lines[1].valMeanDice).toBeTypeOf('number')
    expect(Object.keys(lines[0].loss).sort()).toEqual(
      ['dce_D1', 'dce_D2', 'dce_D3', 'dce_D4', 'dce_Y', 'kl_dec_D2', 'kl_dec_D3', 'kl_dec_D4', 'kl_enc_E1', 'kl_enc_E2', 'kl_enc_E3', 'total'].sort(),
    )
    // The manifest records both starts, with versions, backend, seeds and hashes.
    const manifest = JSON.parse(readFileSync(join(workspace, 'runs', victim, 'manifest.json'), 'utf8'))
    expect(manifest.starts.map((s: { fromEpoch: number }) => s.fromEpoch)).toEqual([0, 1])
    expect(manifest.starts[0].backend).toBe('cpu')
    expect(manifest.dataset.hash).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(manifest.split.hash).toBeTruthy()
    expect(manifest.app.version).toBeTruthy()
    expect(existsSync(join(workspace, 'runs', victim, 'checkpoints', 'best.ckpt'))).toBe(true)
  })

  it('a full disk fails the run with a clear message and leaves the last checkpoint intact', { timeout: 1_200_000 }, async () => {
    await trainAndKillInEpoch2('full')
    const id = 'full-DSD-fold0'
    const dir = join(workspace, 'runs', id)
    const before = readFileSync(join(dir, 'checkpoints', 'last.ckpt'))
    expect(before.length).toBeGreaterThan(250 * 1024)
    // Resume with a 200 KiB file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes fail with
    // EFBIG like ENOSPC on a full disk): the epoch-2 checkpoint cannot be written.
    const limited = spawnSync('bash', ['-c', 'trap "" XFSZ; ulimit -f 200; exec "$0" "$@"', process.execPath,
      join(ROOT, 'bin/dsd.mjs'), 'resume', id, '--workspace', workspace], {
      encoding: 'utf8',
      env: { ...process.env, DSD_BACKEND: 'cpu' },
      timeout: 600_000,
    })
    expect(limited.status, limited.stderr).not.toBe(0)
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))
    expect(state).toMatchObject({ status: 'failed', epoch: 1 })
    expect(state.message).toMatch(/No space left to save full-DSD-fold0/)
    // Epoch 2 validates and is the best so far: best.ckpt is written first, and that write fails.
    expect(state.message).toMatch(/checkpoints\/best\.ckpt: could not write the checkpoint \(EFBIG/)
    expect(state.message).toMatch(/epoch 1\) is intact.*dsd resume full-DSD-fold0/)
    expect(limited.stderr).toMatch(/No space left/)
    // Nothing half-written: the epoch-1 checkpoint is byte-identical and loads, no temp files,
    // the log still ends at epoch 1.
    expect(readFileSync(join(dir, 'checkpoints', 'last.ckpt')).equals(before)).toBe(true)
    expect(unpackTrainingState(loadCheckpoint(join(dir, 'checkpoints', 'last.ckpt'))).metadata).toMatchObject({ epoch: 1 })
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['last.ckpt'])
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([])
    expect(readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1)

    // With room again, the same run resumes from epoch 1 and completes.
    const resumed = dsd(['resume', id, '--json'])
    expect(resumed.status, resumed.stderr).toBe(0)
    expect(resumed.stderr).toMatch(/resuming after epoch 1/)
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))).toMatchObject({ status: 'completed', epoch: 3 })
    const epochs = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch)
    expect(epochs('log.jsonl')).toEqual([1, 2, 3])
    expect(epochs('timing.jsonl')).toEqual([1, 2, 3])
  })
})
