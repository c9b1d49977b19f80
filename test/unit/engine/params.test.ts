import { describe, expect, it } from 'vitest'
import { describeModel, resolveConfig, type ModelConfig } from '../../../main/engine/model'
import { vitParamCount } from '../../../main/engine/vit'
import { DsdError } from '../../../main/errors'

// dsd-spec §6: analytic counts from the MONAI 0.9.1 block definitions.
const SPEC_ROWS: {
  name: string
  config: ModelConfig
  backbone: number
  dsd: number
  percent: string
}[] = [
  {
    name: 'UNETR MMWHS (in 1, K 8, F 32, 96³)',
    config: { backbone: 'unetr', preset: 'mmwhs' },
    backbone: 101_787_016,
    dsd: 17_344,
    percent: '0.0170',
  },
  {
    name: 'nnU-Net MMWHS (in 1, K 8, filters 32…320)',
    config: { backbone: 'dynunet', preset: 'mmwhs' },
    backbone: 16_663_688,
    dsd: 8_592,
    percent: '0.0516',
  },
  {
    name: 'UNETR BraTS (in 4, K 4, F 16, 128³)',
    config: { backbone: 'unetr', preset: 'brats' },
    backbone: 102_449_732,
    dsd: 5_904,
    percent: '0.0058',
  },
  {
    name: 'nnU-Net BraTS (in 4, K 4, filters 16…256)',
    config: { backbone: 'dynunet', preset: 'brats' },
    backbone: 5_688_132,
    dsd: 2_552,
    percent: '0.045',
  },
  {
    name: 'UNETR MMWHS, F 16 (ablation config)',
    config: { backbone: 'unetr', preset: 'mmwhs', featureSize: 16 },
    backbone: 92_783_944,
    dsd: 13_632,
    percent: '0.0147',
  },
]

describe('parameter counts (dsd-spec §6)', () => {
  for (const row of SPEC_ROWS) {
    it(row.name, () => {
      const d = describeModel(row.config)
      expect(d.counts).toEqual({ backbone: row.backbone, dsd: row.dsd })
      expect(d.overheadPercent.toFixed(row.percent.split('.')[1]!.length)).toBe(row.percent)
      // rows add up to the same totals: shared modules appear once
      const fromRows = { backbone: 0, dsd: 0 }
      for (const r of d.layers) fromRows[r.group] += r.params
      expect(fromRows).toEqual(d.counts)
    })
  }

  it('nnU-Net MMWHS DSD modules: 5 shared, per-module counts of spec §6', () => {
    const d = describeModel({ backbone: 'dynunet', preset: 'mmwhs' })
    const heads = d.layers.filter((r) => r.group === 'dsd')
    expect(heads.map((r) => [r.name, r.inChannels, r.params])).toEqual([
      ['deep_1', 320, 3088],
      ['deep_2', 256, 2576],
      ['deep_3', 128, 1552],
      ['deep_4', 64, 1040],
      ['deep_5', 32, 336],
    ])
  })

  it('UNETR MMWHS DSD modules: 8 separate, per-module counts of spec §6', () => {
    const d = describeModel({ backbone: 'unetr', preset: 'mmwhs' })
    const heads = Object.fromEntries(
      d.layers.filter((r) => r.group === 'dsd').map((r) => [r.name, r.params]),
    )
    expect(heads).toEqual({
      deep_5_enc: 336,
      deep_4_enc: 1040,
      deep_3_enc: 1552,
      deep_2_enc: 2576,
      deep_2_dec: 6672,
      deep_3_dec: 2576,
      deep_4_dec: 1552,
      deep_5_dec: 1040,
    })
  })

  it('ViT parameters match the analytic formula and the UNETR summary row', () => {
    const d = describeModel({ backbone: 'unetr', preset: 'mmwhs' })
    const vitRow = d.layers.find((r) => r.name === 'vit')!
    const analytic = vitParamCount({
      inChannels: 1,
      imgSize: [96, 96, 96],
      patch: 16,
      hidden: 768,
      layers: 12,
      heads: 12,
      mlp: 3072,
    })
    expect(vitRow.params).toBe(analytic)
    // perceptron embedding 4096·768 + 768, position 216·768, 12 blocks of 7,085,568, final norm
    expect(analytic).toBe(4096 * 768 + 768 + 216 * 768 + 12 * 7_085_568 + 2 * 768)
  })

  it('MONAI parameter shapes: no conv bias in Res/Basic/Up blocks, transposed layout [k,k,k,out,in]', () => {
    const d = describeModel({ backbone: 'dynunet', preset: 'mmwhs' })
    const shape = (n: string) => d.params.find((p) => p.name === n)?.shape
    expect(shape('input_block.conv1.weight')).toEqual([3, 3, 3, 1, 32])
    expect(shape('input_block.conv3.weight')).toEqual([1, 1, 1, 1, 32])
    expect(shape('bottleneck.conv3.weight')).toEqual([1, 1, 1, 256, 320])
    expect(shape('upsamples.0.transp_conv.weight')).toEqual([2, 2, 2, 256, 320])
    expect(shape('upsamples.0.conv_block.conv1.weight')).toEqual([3, 3, 3, 512, 256])
    expect(shape('deep_1.up.weight')).toEqual([2, 2, 2, 8, 8])
    expect(shape('deep_5.up.weight')).toEqual([1, 1, 1, 8, 8])
    expect(d.params.filter((p) => p.name.endsWith('.bias')).map((p) => p.name)).toEqual([
      'output_block.conv.bias',
      'deep_1.conv.bias',
      'deep_1.up.bias',
      'deep_2.conv.bias',
      'deep_2.up.bias',
      'deep_3.conv.bias',
      'deep_3.up.bias',
      'deep_4.conv.bias',
      'deep_4.up.bias',
      'deep_5.conv.bias',
      'deep_5.up.bias',
    ])
    // DynUNet: Kaiming-normal a = 0.01 everywhere, zero biases (DSD modules included)
    for (const p of d.params) {
      expect(p.init.kind).toBe(p.name.endsWith('.bias') ? 'zeros' : 'kaiming-normal')
    }
  })

  it('small presets are small', () => {
    for (const backbone of ['dynunet', 'unetr'] as const) {
      const d = describeModel({ backbone, preset: 'small' })
      expect(d.counts.backbone).toBeLessThan(2_000_000)
      expect(d.config.patch).toEqual([32, 32, 32])
    }
  })

  it('rejects bad configs with a message naming the field and the fix', () => {
    const msg = (c: ModelConfig) => {
      try {
        resolveConfig(c)
      } catch (e) {
        expect(e).toBeInstanceOf(DsdError)
        return (e as Error).message
      }
      throw new Error('no error')
    }
    expect(msg({ backbone: 'dynunet', patch: [40, 32, 32] })).toMatch(
      /multiple of 16.*\[48, 32, 32\]/,
    )
    expect(msg({ backbone: 'unetr', preset: 'huge' })).toMatch(
      /unknown unetr preset "huge".*mmwhs, brats, small/,
    )
    expect(msg({ backbone: 'dynunet', filters: [8, 16, 32] })).toMatch(/filters must list 5/)
    expect(msg({ backbone: 'unetr', hidden: 100, heads: 3 })).toMatch(/divisible by heads/)
    expect(msg({ backbone: 'unetr', taps: [1, 2, 9] })).toMatch(/taps/)
    expect(msg({ backbone: 'dynunet', numClasses: 1 })).toMatch(/at least 2/)
  })
})
