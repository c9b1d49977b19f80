import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it, vi } from 'vitest'
import { CliError } from '../../../main/cli/args'
import * as benchCli from '../../../main/cli/bench'
import * as modelCli from '../../../main/cli/model'
import { probeBackends } from '../../../main/engine/backends'
import { ROOT } from '../../helpers/shared'

const exec = promisify(execFile)
const DSD = join(ROOT, 'bin/dsd.mjs')

/** Run a command in-process; returns its exit code (or the CliError) and what it printed. */
async function inProcess(
  mod: { run(args: string[]): Promise<number> },
  args: string[],
): Promise<{ code: number; out: string; error?: CliError }> {
  let out = ''
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += a.join(' ') + '\n'
  })
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
    out += String(chunk)
    return true
  })
  try {
    return { code: await mod.run(args), out }
  } catch (err) {
    if (err instanceof CliError) return { code: err.exitCode, out, error: err }
    throw err
  } finally {
    log.mockRestore()
    write.mockRestore()
  }
}

async function dsd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [DSD, ...args], {
      cwd: ROOT,
      env: { ...process.env, DSD_BACKEND: '' },
      maxBuffer: 16 * 2 ** 20,
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('dsd model', () => {
  it('--json gives the spec §6 counts for UNETR MMWHS and DynUNet BraTS', async () => {
    const u = await dsd(['model', '--backbone', 'unetr', '--preset', 'mmwhs', '--json'])
    expect(u.code, u.stderr).toBe(0)
    const uj = JSON.parse(u.stdout)
    expect(uj.backbone).toBe('unetr')
    expect(uj.preset).toBe('mmwhs')
    expect(uj.params).toEqual({ backbone: 101_787_016, dsd: 17_344, total: 101_804_360 })
    expect(uj.overheadPercent.toFixed(4)).toBe('0.0170')
    expect(uj.config.patch).toEqual([96, 96, 96])
    expect(uj.layers.filter((r: { group: string }) => r.group === 'dsd')).toHaveLength(8)

    const d = await inProcess(modelCli, ['--backbone', 'dynunet', '--preset', 'brats', '--json'])
    const dj = JSON.parse(d.out)
    expect(dj.params.backbone).toBe(5_688_132)
    expect(dj.params.dsd).toBe(2_552)
    expect(dj.config.inChannels).toBe(4)
    expect(dj.layers.filter((r: { group: string }) => r.group === 'dsd')).toHaveLength(5)
  })

  it('prints a table with the overhead, and overrides change the counts', async () => {
    const t = await inProcess(modelCli, [
      '--backbone',
      'dynunet',
      '--preset',
      'mmwhs',
      '--classes',
      '4',
      '--in',
      '2',
    ])
    expect(t.code).toBe(0)
    expect(t.out).toMatch(/SelfDistilDynUNet \(preset mmwhs\): 2 in, 4 classes/)
    expect(t.out).toMatch(/deep_2\s+DeepUp\s+256 → 4/)
    // input block gains 27·32 + 32 weights per extra channel; the out block and heads shrink with K
    const base = 16_663_688 + (27 * 32 + 32) - (32 + 1) * 4
    expect(t.out).toContain(`backbone ${base.toLocaleString('en-US')} parameters`)
  })

  it('fails with exit code 2 and a message naming the fix for a bad patch or preset', async () => {
    // through the real binary once: the dispatcher prints "dsd model: <message>" and exits 2
    const p = await dsd(['model', '--backbone', 'unetr', '--patch', '40'])
    expect(p.code).toBe(2)
    expect(p.stderr).toMatch(/^dsd model: .*multiple of 16.*\[48, 48, 48\]/)
    const q = await inProcess(modelCli, ['--backbone', 'dynunet', '--preset', 'nope'])
    expect(q.code).toBe(2)
    expect(q.error?.message).toMatch(/unknown dynunet preset "nope".*mmwhs, brats, small/)
    const f = await inProcess(modelCli, ['--backbone', 'unetr', '--filters', '1,2,3,4,5'])
    expect(f.error?.message).toMatch(/--filters applies to --backbone dynunet only/)
  })
})

describe('dsd bench', () => {
  it('--json on the cpu backend with a tiny network reports timings, throughput and memory', async () => {
    const r = await dsd([
      'bench',
      '--backend',
      'cpu',
      '--backbone',
      'dynunet',
      '--patch',
      '16',
      '--filters',
      '2,2,4,4,4',
      '--classes',
      '2',
      '--batch',
      '1',
      '--steps',
      '2',
      '--warmup',
      '1',
      '--precision',
      'f16',
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    const j = JSON.parse(r.stdout) // stdout is pure JSON; progress went to stderr
    // f16 asked on a backend without half precision: f32, the reason said, no loss scaling
    expect(j.precision).toEqual({ requested: 'f16', effective: 'f32', reason: expect.stringMatching(/cpu backend computes in float32/) })
    expect(j.lossScale).toBeUndefined()
    expect(r.stderr).toMatch(/precision f16 asked, f32 used/)
    expect(j).toMatchObject({
      backend: 'cpu',
      device: 'JavaScript (reference)',
      backbone: 'dynunet',
      preset: 'small',
      patch: [16, 16, 16],
      batch: 1,
      variant: 'DSD',
    })
    expect(j.trainStepMsAll).toHaveLength(2)
    expect(j.inferMsAll).toHaveLength(2)
    expect(j.trainStepMs).toBeGreaterThan(0)
    expect(j.inferMs).toBeGreaterThan(0)
    // trainStepMs is printed rounded, voxelsPerSecond comes from the unrounded median: ±1.
    expect(Math.abs(j.voxelsPerSecond - (16 ** 3 * 1000) / j.trainStepMs)).toBeLessThan(1.5)
    expect(j.peakBytes).toBeGreaterThan(16 ** 3 * 2 * 4 * 9) // at least the nine [1,16³,2] outputs
    expect(j.maxRssBytes).toBeGreaterThan(j.peakBytes)
    expect(r.stderr).toMatch(/cpu: train step 1\/3 \(warm-up\)/)
  })

  it('--profile on webgpu reports the GPU memory peak and a per-kernel profile (engine kernels)', async (ctx) => {
    const probe = (await probeBackends()).find((p) => p.name === 'webgpu')
    if (!probe?.available) {
      const line = `webgpu: not run: ${probe?.reason ?? 'not probed'}`
      console.warn(`\n!!!!!!!!!! ${line} !!!!!!!!!!\n`)
      if (process.env.DSD_REQUIRE_WEBGPU === '1') expect.fail(line)
      ctx.skip()
      return
    }
    const r = await dsd([
      'bench',
      '--backend',
      'webgpu',
      '--patch',
      '16',
      '--filters',
      '2,2,4,4,4',
      '--classes',
      '2',
      '--batch',
      '1',
      '--steps',
      '1',
      '--warmup',
      '0',
      '--no-infer',
      '--profile',
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    const j = JSON.parse(r.stdout)
    expect(j).toMatchObject({ backend: 'webgpu', webgpuKernels: 'engine' })
    // the device asks for what the adapter offers of these (lavapipe: all of them)
    expect(j.webgpuFeatures).toEqual(expect.arrayContaining(probe.gpuFeatures?.shaderF16 ? ['shader-f16'] : []))
    expect(j.precision.effective).toBe(j.precision.requested === 'f16' && j.webgpuFeatures.includes('shader-f16') ? 'f16' : 'f32')
    expect(['direct', 'tiled']).toContain(j.convVariant)
    // at least the input, the nine [1,16³,2] outputs and their gradients live at once
    expect(j.gpuPeakBytes).toBeGreaterThan(16 ** 3 * 2 * 4 * 9)
    expect(j.gpuPooledBytes).toBeGreaterThanOrEqual(j.gpuPeakBytes)
    const kernels = j.profile.byKernel.map((k: { name: string }) => k.name)
    expect(kernels).toEqual(
      expect.arrayContaining([
        'DsdConv3D',
        'DsdConv3DBackpropInput',
        'DsdConv3DBackpropFilter',
        'DsdLoss',
        'DsdAdamW',
      ]),
    )
    const dispatches = j.profile.byDispatch.map((k: { name: string }) => k.name)
    expect(dispatches).toEqual(
      expect.arrayContaining(['conv3d.fwd', 'conv3d.dw', 'norm.stats', 'loss.grad']),
    )
    expect(['timestamp-query', 'none']).toContain(j.profile.timer)
    if (j.profile.timer === 'timestamp-query') expect(j.profile.totalMs).toBeGreaterThan(0)
    expect(r.stderr).toMatch(/webgpu: profiling one training step/)
  })

  it('rejects an unknown variant or backend', async () => {
    const v = await inProcess(benchCli, ['--variant', 'xyz', '--json'])
    expect(v.code).toBe(2)
    expect(v.error?.message).toMatch(/unknown DSD variant "xyz"/)
    const b = await inProcess(benchCli, ['--backend', 'cuda'])
    expect(b.code).toBe(2)
    expect(b.error?.message).toMatch(/--backend must be/)
    const p = await inProcess(benchCli, ['--precision', 'f64'])
    expect(p.code).toBe(2)
    expect(p.error?.message).toMatch(/--precision must be f32 or f16, got "f64"/)
  })
})
