import { describe, expect, it } from 'vitest'
import * as engine from '../../../main/engine/index'

describe('engine entry point (package export ./engine)', () => {
  it('re-exports the library API', () => {
    for (const name of [
      'tf',
      'initBackend',
      'probeBackends',
      'createModel',
      'describeModel',
      'loadWeights',
      'dsdLoss',
      'ablation',
      'AdamW',
      'StepLR',
      'saveCheckpoint',
      'loadCheckpoint',
      'packTrainingState',
      'unpackTrainingState',
      'trainStep',
      'slidingWindowInference',
      'Rng',
    ] as const) {
      expect(engine[name], name).toBeDefined()
    }
    expect(engine.OUTPUT_NAMES).toEqual(['Y', 'D4', 'D3', 'D2', 'D1', 'E1', 'E2', 'E3', 'E4'])
  })

  it('loadWeights copies matching weights and names what does not fit', async () => {
    const cfg: engine.ModelConfig = {
      backbone: 'dynunet',
      inChannels: 1,
      numClasses: 2,
      filters: [2, 2, 2, 2, 2],
    }
    const a = engine.createModel({ ...cfg, seed: 1 })
    const b = engine.createModel({ ...cfg, seed: 2 })
    const c = engine.createModel({ ...cfg, numClasses: 3 })
    try {
      engine.loadWeights(b, a.variables, 'a.dsdckpt')
      const w = 'upsamples.1.conv_block.conv2.weight'
      expect(Array.from(await b.variables[w]!.data())).toEqual(
        Array.from(await a.variables[w]!.data()),
      )
      expect(() => engine.loadWeights(c, a.variables, 'a.dsdckpt')).toThrow(
        /^a\.dsdckpt: weights do not fit .* with another shape \(e\.g\. output_block\.conv\.weight: file \[1, 1, 1, 2, 2\], model \[1, 1, 1, 2, 3\]/,
      )
      const { 'deep_1.up.bias': _drop, ...partial } = a.variables
      void _drop
      expect(() => engine.loadWeights(b, partial)).toThrow(/1 missing \(e\.g\. deep_1\.up\.bias\)/)
    } finally {
      a.dispose()
      b.dispose()
      c.dispose()
    }
  })
})
