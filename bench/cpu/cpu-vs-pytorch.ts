/**
 * DSD Studio's default CPU backend against PyTorch on the same machine, in the same run:
 *
 *   small    DynUNet `small` (4-8-16-32-64, 3 classes), 2 × 32³, DSD training step
 *   mmwhs    DynUNet `mmwhs` (32-64-128-256-320, 8 classes), 2 × 64³, DSD training step
 *   predict  sliding-window prediction of one hippocampus case with the small network
 *
 * Ours: `dsd bench --backend wasm` (the CPU backend the ladder picks without a GPU) and
 * bench/cpu/sliding-window.ts. PyTorch: bench/cpu/torch_dynunet.py (the same network, loss,
 * AdamW and window logic) with Debian's python3-torch, once on every core (OpenMP passive
 * waiting, which avoids its spin-wait collapse on a shared machine) and once on one thread;
 * the faster of the two is the reference. Two warm-up steps (one for mmwhs) on both sides: the
 * first calls of kernels.wasm run on V8's baseline compiler until its optimising tier is ready. Rows run interleaved (ours, PyTorch, …) for
 * `--rounds` rounds; the ratio is ours / PyTorch per round, then the median.
 *
 *   npx tsx bench/cpu/cpu-vs-pytorch.ts [--rows small,mmwhs,predict] [--rounds 2] [--steps 3] [--json]
 */
import { spawnSync } from 'node:child_process'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = join(import.meta.dirname, '../..')
const PY = process.env.PYTHON ?? '/usr/bin/python3'
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: 'small,mmwhs,predict' },
    rounds: { type: 'string', default: '2' },
    steps: { type: 'string', default: '3' },
    json: { type: 'boolean' },
  },
})
const rounds = Number(values.rounds)
const steps = Number(values.steps)
const cores = cpus().length

function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Record<string, unknown> {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-3000)}`)
  }
  // the last JSON object printed (dsd bench pretty-prints one; the others print one line)
  const out = r.stdout.trim()
  const start = out.startsWith('{') ? 0 : out.lastIndexOf('\n{') + 1
  try {
    return JSON.parse(out.slice(start)) as Record<string, unknown>
  } catch {
    throw new Error(`${cmd} ${args.join(' ')} printed no JSON:\n${out.slice(-2000)}`)
  }
}

interface Row {
  name: string
  what: string
  ours: () => number
  torch: (threads: number) => number
}

const volume = join(tmpdir(), `dsd-bench-hippocampus-${process.pid}.f32`)
let volumeShape = ''

const ROWS: Record<string, Row> = {
  small: {
    name: 'small',
    what: 'DynUNet small, 2 × 32³, DSD training step',
    ours: () =>
      run(process.execPath, [
        'bin/dsd.mjs',
        'bench',
        '--backend',
        'wasm',
        '--preset',
        'small',
        '--patch',
        '32',
        '--batch',
        '2',
        '--steps',
        String(steps),
        '--warmup',
        '2',
        '--no-infer',
        '--json',
      ]).trainStepMs as number,
    torch: (threads) =>
      run(
        PY,
        [
          'bench/cpu/torch_dynunet.py',
          '--filters',
          '4,8,16,32,64',
          '--classes',
          '3',
          '--patch',
          '32',
          '--batch',
          '2',
          '--steps',
          String(steps),
          '--warmup',
          '2',
          '--no-infer',
          '--threads',
          String(threads),
        ],
        { OMP_WAIT_POLICY: 'PASSIVE' },
      ).trainStepMs as number,
  },
  mmwhs: {
    name: 'mmwhs',
    what: 'DynUNet mmwhs, 2 × 64³, DSD training step',
    ours: () =>
      run(process.execPath, [
        'bin/dsd.mjs',
        'bench',
        '--backend',
        'wasm',
        '--preset',
        'mmwhs',
        '--patch',
        '64',
        '--batch',
        '2',
        '--steps',
        String(Math.min(steps, 2)),
        '--warmup',
        '1',
        '--no-infer',
        '--json',
      ]).trainStepMs as number,
    torch: (threads) =>
      run(
        PY,
        [
          'bench/cpu/torch_dynunet.py',
          '--filters',
          '32,64,128,256,320',
          '--classes',
          '8',
          '--patch',
          '64',
          '--batch',
          '2',
          '--steps',
          String(Math.min(steps, 2)),
          '--warmup',
          '1',
          '--no-infer',
          '--threads',
          String(threads),
        ],
        { OMP_WAIT_POLICY: 'PASSIVE' },
      ).trainStepMs as number,
  },
  predict: {
    name: 'predict',
    what: 'sliding-window prediction, one hippocampus case, small network',
    ours: () => {
      const r = run(process.execPath, [
        '--import',
        'tsx',
        'bench/cpu/sliding-window.ts',
        '--runs',
        String(steps),
        '--warmup',
        '2',
        '--write-volume',
        volume,
      ])
      volumeShape = (r.shape as number[]).join(',')
      return r.slidingWindowMs as number
    },
    torch: (threads) =>
      run(
        PY,
        [
          'bench/cpu/torch_dynunet.py',
          '--no-train',
          '--no-infer',
          '--volume',
          volume,
          '--shape',
          volumeShape,
          '--sw-runs',
          String(steps),
          '--sw-warmup',
          '2',
          '--threads',
          String(threads),
        ],
        { OMP_WAIT_POLICY: 'PASSIVE' },
      ).slidingWindowMs as number,
  },
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const results: {
  row: string
  what: string
  ours: number[]
  torchAll: number[]
  torch1: number[]
  ratios: number[]
  ratio: number
}[] = []
for (const name of values.rows!.split(',')) {
  const row = ROWS[name]
  if (!row) throw new Error(`unknown row "${name}" (small, mmwhs, predict)`)
  const rec = {
    row: name,
    what: row.what,
    ours: [] as number[],
    torchAll: [] as number[],
    torch1: [] as number[],
    ratios: [] as number[],
    ratio: 0,
  }
  for (let r = 0; r < rounds; r++) {
    process.stderr.write(`${name}: round ${r + 1}/${rounds}\n`)
    // alternate who goes first, so that slow drift in the machine's load does not favour one side
    const order = r % 2 === 0 ? ['ours', 'torch'] : ['torch', 'ours']
    let ours = 0
    let tAll = 0
    let t1 = 0
    for (const who of order) {
      if (who === 'ours') ours = row.ours()
      else {
        if (name === 'predict' && !volumeShape) ours = row.ours() // the volume comes from ours
        tAll = row.torch(cores)
        t1 = cores > 1 ? row.torch(1) : tAll
      }
    }
    rec.ours.push(ours)
    rec.torchAll.push(tAll)
    rec.torch1.push(t1)
    rec.ratios.push(ours / Math.min(tAll, t1))
    process.stderr.write(
      `${name}: ours ${ours.toFixed(0)} ms, PyTorch ${tAll.toFixed(0)} ms on ${cores} threads / ${t1.toFixed(0)} ms on 1 → ${(ours / Math.min(tAll, t1)).toFixed(2)}×\n`,
    )
  }
  rec.ratio = median(rec.ratios)
  results.push(rec)
}

if (values.json) {
  console.log(JSON.stringify({ cores, cpu: cpus()[0]?.model, results }, null, 2))
} else {
  console.log(
    `${cpus()[0]?.model ?? 'CPU'}, ${cores} cores; ms are medians per run, ratio = ours / best PyTorch`,
  )
  console.log('| what | ours (ms) | PyTorch all cores (ms) | PyTorch 1 thread (ms) | ratio |')
  console.log('|---|---|---|---|---|')
  for (const r of results) {
    const f = (xs: number[]) => xs.map((v) => v.toFixed(0)).join(' / ')
    console.log(
      `| ${r.what} | ${f(r.ours)} | ${f(r.torchAll)} | ${f(r.torch1)} | ${r.ratios.map((v) => v.toFixed(2)).join(' / ')} (median ${r.ratio.toFixed(2)}×) |`,
    )
  }
}
