/**
 * Training precision end to end. `dsd train --precision f16` on a backend without half
 * precision records f16 in config.json, trains at f32 and says why (stderr, manifest.json), with
 * no loss scaling; a run without the flag records no precision. On WebGPU (lavapipe offers
 * shader-f16) an f16 run trains with dynamic loss scaling: each log line has the skipped steps
 * and the scale, the checkpoint keeps the scaler's state, and a run cancelled in epoch 2 and
 * resumed ends with exactly the weights, AdamW state and log of an uninterrupted run (skipped
 * without an adapter; DSD_REQUIRE_WEBGPU=1 makes that a failure).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { initBackend } from '../../../main/engine/backends'
import { loadCheckpoint, unpackTrainingState } from '../../../main/engine/checkpoint'
import { createRuns } from '../../../main/services/training'
import { trainRun, type TrainMessage } from '../../../main/training/loop'
import { dsdCli, ROOT, tmpDir } from '../../helpers/shared'
import { skipUnlessWebgpu, webgpuUnavailable } from '../../helpers/webgpu'

const workspace = tmpDir('precision-ws')
const dsd = (args: string[]) => dsdCli(workspace, args)

const TINY = ['--dataset', 'hippocampus-sample', '--split', 'k10', '--folds', '0', '--filters', '4,4,8,8,8',
  '--patch', '16', '--epochs', '1', '--steps-per-epoch', '1', '--validate-every', '0', '--backend', 'cpu']

const runDir = (id: string) => join(workspace, 'runs', id)
const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'))
const logLines = (id: string) => readFileSync(join(runDir(id), 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))

beforeAll(() => {
  expect(dsd(['import', join(ROOT, 'resources/sample/hippocampus')]).status).toBe(0)
  expect(dsd(['split', 'hippocampus-sample', '--folds', '10', '--seed', '0', '--name', 'k10']).status).toBe(0)
})

afterAll(async () => {
  await initBackend('cpu')
})

describe('training precision', () => {
  it('f16 asked on the cpu backend: recorded, trained at f32, the reason said; f32 records nothing', { timeout: 600_000 }, () => {
    const r = dsd(['train', ...TINY, '--precision', 'f16', '--name', 'half'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/precision f32 \(f16 asked: the cpu backend computes in float32/)
    const id = 'half-DSD-fold0'
    expect(json(join(runDir(id), 'config.json')).precision).toBe('f16')
    const start = json(join(runDir(id), 'manifest.json')).starts[0]
    expect(start.precision).toEqual({ requested: 'f16', effective: 'f32', reason: expect.stringMatching(/cpu backend/) })
    const [epoch] = logLines(id)
    expect(epoch.skippedSteps).toBeUndefined()
    expect(epoch.lossScale).toBeUndefined()

    const plain = dsd(['train', ...TINY, '--name', 'full'])
    expect(plain.status, plain.stderr).toBe(0)
    expect(json(join(runDir('full-DSD-fold0'), 'config.json'))).not.toHaveProperty('precision')
    expect(json(join(runDir('full-DSD-fold0'), 'manifest.json')).starts[0]).not.toHaveProperty('precision')
    expect(plain.stderr).not.toMatch(/precision/)
    const bad = dsd(['train', ...TINY, '--precision', 'f64'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/--precision: .*f32.*f16/)
  })

  it('f16 on WebGPU: loss scaling logged and checkpointed; cancel + resume equals a straight run', { timeout: 1_200_000 }, async (ctx: TestContext) => {
    if (skipUnlessWebgpu(ctx, await webgpuUnavailable())) return
    const form = {
      datasetId: 'hippocampus-sample',
      split: 'k10',
      folds: [0],
      variants: ['DSD' as const],
      filters: [4, 4, 8, 8, 8],
      patch: [16, 16, 16] as [number, number, number],
      epochs: 2,
      stepsPerEpoch: 2,
      validateEvery: 0,
      backend: 'webgpu' as const,
      precision: 'f16' as const,
      seed: 5,
    }
    const train = async (runId: string, cancelAt?: { epoch: number; step: number }) => {
      let cancel = false
      const messages: TrainMessage[] = []
      const state = await trainRun({
        workspace,
        runId,
        control: { requested: () => (cancel ? 'cancel' : 'run'), waitWhilePaused: () => {} },
        post: (m) => {
          messages.push(m)
          if (cancelAt && m.type === 'step' && m.epoch === cancelAt.epoch && m.step === cancelAt.step) cancel = true
        },
      })
      return { state, messages }
    }
    const [a] = await createRuns(workspace, { ...form, name: 'straight' })
    const [b] = await createRuns(workspace, { ...form, name: 'resumed' })
    const straight = await train(a!.id)
    expect(straight.state.status, straight.state.message).toBe('completed')
    const started = straight.messages.find((m) => m.type === 'started')
    expect(started && 'precision' in started ? started.precision : null).toEqual({ requested: 'f16', effective: 'f16' })
    const log = logLines(a!.id)
    expect(log).toHaveLength(2)
    for (const line of log) {
      expect(line.skippedSteps).toBe(0)
      expect(line.lossScale).toBe(2 ** 16)
    }
    const ckpt = (id: string) => loadCheckpoint(join(runDir(id), 'checkpoints', 'last.ckpt'))
    const scaleOf = (id: string) => (ckpt(id).metadata as { lossScale?: unknown }).lossScale
    expect(scaleOf(a!.id)).toEqual({ scale: 2 ** 16, goodSteps: 4 })

    const first = await train(b!.id, { epoch: 2, step: 1 })
    expect(first.state).toMatchObject({ status: 'cancelled', epoch: 1 })
    expect(scaleOf(b!.id)).toEqual({ scale: 2 ** 16, goodSteps: 2 })
    const second = await train(b!.id)
    expect(second.state.status, second.state.message).toBe('completed')
    expect(logLines(b!.id)).toEqual(log)
    await initBackend('cpu') // read the checkpoints' tensors synchronously
    const wa = unpackTrainingState(ckpt(a!.id))
    const wb = unpackTrainingState(ckpt(b!.id))
    const flat = (s: typeof wa) => ({ ...s.weights, ...(s.optimizer?.tensors ?? {}) })
    const fa = flat(wa)
    const fb = flat(wb)
    expect(Object.keys(fb).sort()).toEqual(Object.keys(fa).sort())
    for (const k of Object.keys(fa)) {
      expect(Array.from(fb[k]!.dataSync()), k).toEqual(Array.from(fa[k]!.dataSync()))
    }
  })
})
