import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  loadCheckpoint,
  packTrainingState,
  readCheckpointHeader,
  saveCheckpoint,
  unpackTrainingState,
} from '../../../main/engine/checkpoint'
import { AdamW, StepLR, type StepLRState } from '../../../main/engine/optimizer'
import { Rng } from '../../../main/engine/random'
import { initBackend } from '../../../main/engine/backends'
import { tf } from '../../../main/engine/tf'
import { tmpDir } from '../../helpers/shared'

const dir = tmpDir('engine-core-ckpt')

beforeAll(async () => {
  await initBackend('cpu')
  mkdirSync(dir, { recursive: true })
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function sample(): Record<string, tf.Tensor> {
  const rng = new Rng(5)
  return {
    'enc/conv1/w': tf.tensor(rng.normalArray(3 * 3 * 3 * 1 * 4), [3, 3, 3, 1, 4]),
    'enc/conv1/b': tf.tensor1d([0.5, -0.25, 1e-30, -3.5e38]),
    'odd/size': tf.tensor1d([1, 2, 3]), // 12 bytes: forces alignment padding
    counts: tf.tensor([1, -2, 2147483647], [3], 'int32'),
    mask: tf.tensor([true, false, true], [3], 'bool'),
    scalar: tf.scalar(Math.PI),
  }
}

describe('checkpoint files', () => {
  test('round trip: names, shapes, dtypes, bit-exact values and metadata', async () => {
    const t = sample()
    const path = join(dir, 'a.dsdckpt')
    const meta = {
      epoch: 12,
      config: { backbone: 'dynunet', classes: [0, 1, 2] },
      note: 'ünïcode ✓',
    }
    const header = await saveCheckpoint(path, t, meta)
    expect(header.tensors.every((e) => e.offset % 8 === 0)).toBe(true)
    const back = loadCheckpoint(path)
    expect(back.metadata).toEqual(meta)
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(t).sort())
    for (const [k, v] of Object.entries(t)) {
      const w = back.tensors[k]!
      expect(w.shape, k).toEqual(v.shape)
      expect(w.dtype, k).toBe(v.dtype)
      expect(Array.from(w.dataSync()), k).toEqual(Array.from(v.dataSync()))
    }
    expect(readCheckpointHeader(path).metadata).toEqual(meta)
    // no temp files left behind
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([])
  })

  test('a flipped data byte is caught by the checksum', async () => {
    const path = join(dir, 'flip.dsdckpt')
    await saveCheckpoint(path, sample(), {})
    const buf = readFileSync(path)
    buf[buf.length - 20]! ^= 0x10
    writeFileSync(path, buf)
    expect(() => loadCheckpoint(path)).toThrow(/flip\.dsdckpt: tensor data checksum mismatch/)
  })

  test('a flipped header byte is caught', async () => {
    const path = join(dir, 'head.dsdckpt')
    await saveCheckpoint(path, sample(), { epoch: 1 })
    const buf = readFileSync(path)
    const i = buf.indexOf('"epoch":1')
    buf[i + 8] = '7'.charCodeAt(0)
    writeFileSync(path, buf)
    expect(() => loadCheckpoint(path)).toThrow(/header checksum mismatch/)
  })

  test('truncation is reported with byte counts and a fix', async () => {
    const path = join(dir, 'trunc.dsdckpt')
    const h = await saveCheckpoint(path, sample(), {})
    const full = readFileSync(path).length
    truncateSync(path, full - 100)
    let err: unknown
    try {
      loadCheckpoint(path)
    } catch (e) {
      err = e
    }
    expect((err as { code?: string }).code).toBe('CHECKPOINT_CORRUPT')
    expect(String((err as Error).message)).toMatch(
      new RegExp(
        `header says ${h.dataBytes.toLocaleString('en')} bytes of tensor data but the file has ${(h.dataBytes - 100).toLocaleString('en')}; the file is truncated.*earlier checkpoint`,
      ),
    )
    truncateSync(path, 30)
    expect(() => loadCheckpoint(path)).toThrow(/less than the 48-byte checkpoint prefix/)
  })

  test('not a checkpoint / missing file', () => {
    const path = join(dir, 'other.bin')
    writeFileSync(path, Buffer.alloc(100, 7))
    expect(() => loadCheckpoint(path)).toThrow(/not a DSD checkpoint/)
    expect(() => loadCheckpoint(join(dir, 'nope.dsdckpt'))).toThrow(/cannot read the checkpoint/)
  })

  test('write failure leaves no partial file and the previous checkpoint intact', async () => {
    const path = join(dir, 'keep.dsdckpt')
    await saveCheckpoint(path, { a: tf.tensor1d([1, 2]) }, { v: 1 })
    await expect(
      saveCheckpoint(join(dir, 'no-such-dir', 'x.dsdckpt'), { a: tf.tensor1d([1]) }),
    ).rejects.toThrow(/could not write the checkpoint/)
    const d = tf.tensor1d([1])
    d.dispose()
    await expect(saveCheckpoint(path, { a: d }, { v: 2 })).rejects.toThrow(/disposed/)
    expect(loadCheckpoint(path).metadata).toEqual({ v: 1 })
  })

  test('training state (weights + AdamW + StepLR) packs, saves, loads and resumes', async () => {
    const w = tf.variable(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      true,
      'ckpt-train/w',
    )
    const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
    const sched = new StepLR(1e-3, 2, 0.5)
    opt.applyGradients({
      'ckpt-train/w': tf.tensor2d([
        [0.1, -0.2],
        [0.3, 0],
      ]),
    })
    sched.stepEpoch(opt)
    const packed = packTrainingState({
      weights: { 'ckpt-train/w': w },
      optimizer: opt.exportState(),
      scheduler: sched.state(),
      metadata: { epoch: 1 },
    })
    const path = join(dir, 'train.dsdckpt')
    await saveCheckpoint(path, packed.tensors, packed.metadata)
    const s = unpackTrainingState(loadCheckpoint(path))
    expect(s.metadata).toEqual({ epoch: 1 })
    expect(Array.from(s.weights['ckpt-train/w']!.dataSync())).toEqual(Array.from(w.dataSync()))
    const opt2 = new AdamW({ lr: 1, weightDecay: 1e-5 })
    opt2.importState(s.optimizer!)
    expect(opt2.step).toBe(1)
    expect(s.scheduler?.kind).toBe('steplr')
    expect(StepLR.fromState(s.scheduler as StepLRState).lrAt()).toBe(sched.lrAt())
    // The metadata has the training state and nothing else (no generator slot).
    expect(Object.keys(packed.metadata).sort()).toEqual(['epoch', 'training'])
    expect(Object.keys(packed.metadata.training as object).sort()).toEqual(['optimizer', 'scheduler'])
  })
})
