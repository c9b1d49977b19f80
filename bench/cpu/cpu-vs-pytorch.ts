/**
 * DSD Studio's default CPU backend against PyTorch on the same machine, in the same run:
 *
 *   small    DynUNet `small` (4-8-16-32-64, 3 classes), 2 × 32³, DSD training step
 *   mmwhs    DynUNet `mmwhs` (32-64-128-256-320, 8 classes), 2 × 64³, DSD training step
 *   predict  sliding-window prediction of one hippocampus case with the small network
 *
 * Ours: `dsd bench --backend wasm` (the CPU backend the ladder picks without a GPU) and
 * bench/cpu/sliding-window.ts. PyTorch: bench/cpu/torch_dynunet.py (the same network, loss,
 * AdamW and window logic) with Debian's python3-torch, on as many threads as our pool has
 * (`torch.set_num_threads` = `DSD_CPU_THREADS`, else every core; OpenMP passive waiting, which
 * avoids its spin-wait collapse on a shared machine). `--torch-1` also times PyTorch on one
 * thread (reported beside, and the ratio against the faster PyTorch is printed too). Two
 * warm-up steps (one for mmwhs) on both sides: the first calls of kernels.wasm run on V8's
 * baseline compiler until its optimising tier is ready. Rows run interleaved (ours, PyTorch,
 * …, the order alternating per round) for `--rounds` rounds; the ratio is ours / PyTorch per
 * round, then the median.
 *
 * The machine's 1-minute load average is recorded before every measurement. `--max-load L`
 * waits (up to `--max-wait` seconds, default 300) for it to fall to L or below before each
 * round, and a round measured above L is repeated once (the shared build machine is noisy).
 *
 * The Python with torch: `DSD_PYTHON` (or `PYTHON`), else the first of /usr/bin/python3 and
 * `python3` on PATH that imports torch (pyenv's python3 usually has no torch).
 *
 *   npx tsx bench/cpu/cpu-vs-pytorch.ts [--rows small,mmwhs,predict] [--rounds 2] [--steps 3]
 *        [--torch-1] [--max-load L] [--max-wait S] [--json]
 */
import { spawnSync } from 'node:child_process'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { defaultThreads } from '../../main/engine/kernels/cpu/runtime'

const ROOT = join(import.meta.dirname, '../..')
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: 'small,mmwhs,predict' },
    rounds: { type: 'string', default: '2' },
    steps: { type: 'string', default: '3' },
    'torch-1': { type: 'boolean', default: false },
    'max-load': { type: 'string' },
    'max-wait': { type: 'string', default: '300' },
    json: { type: 'boolean' },
  },
})
const rounds = Number(values.rounds)
const steps = Number(values.steps)
const cores = cpus().length
/** Our pool size; PyTorch gets the same number of threads. */
const threads = defaultThreads()
const maxLoad = values['max-load'] === undefined ? Infinity : Number(values['max-load'])
const maxWaitMs = Number(values['max-wait']) * 1000

/** The first interpreter that imports torch, with its torch version. */
function findPython(): { path: string; torch: string } {
  const named = process.env.DSD_PYTHON ?? process.env.PYTHON
  const candidates = named ? [named] : ['/usr/bin/python3', 'python3']
  const tried: string[] = []
  for (const c of candidates) {
    const r = spawnSync(c, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' })
    if (r.status === 0) return { path: c, torch: r.stdout.trim() }
    tried.push(
      `${c}: ${r.error ? r.error.message : (r.stderr.trim().split('\n').at(-1) ?? `exit ${r.status}`)}`,
    )
  }
  console.error(
    `cpu-vs-pytorch: no Python with torch found (${tried.join('; ')}). Install Debian's python3-torch, or set DSD_PYTHON to an interpreter that has torch.`,
  )
  process.exit(2)
}
const python = findPython()
const PY = python.path

function load1(): number {
  return Number(loadavg()[0]!.toFixed(2))
}

/** Waits (bounded) until the 1-minute load is at most `maxLoad`; returns the load then. */
function waitForQuiet(): number {
  const t0 = Date.now()
  let l = load1()
  while (l > maxLoad && Date.now() - t0 < maxWaitMs) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000)
    l = load1()
  }
  return l
}

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
const ourEnv = { DSD_CPU_THREADS: String(threads) }

/** A DSD training-step row: `dsd bench` on wasm against torch_dynunet.py, same network and shapes. */
function trainRow(
  name: string,
  what: string,
  preset: string,
  filters: string,
  classes: number,
  patch: number,
  timed: number,
  warmup: number,
): Row {
  const shape = ['--patch', String(patch), '--batch', '2', '--steps', String(timed)]
  const tail = ['--warmup', String(warmup), '--no-infer']
  return {
    name,
    what,
    ours: () =>
      run(
        process.execPath,
        [
          'bin/dsd.mjs',
          'bench',
          '--backend',
          'wasm',
          '--preset',
          preset,
          ...shape,
          ...tail,
          '--json',
        ],
        ourEnv,
      ).trainStepMs as number,
    torch: (threads) =>
      run(
        PY,
        [
          'bench/cpu/torch_dynunet.py',
          ...['--filters', filters, '--classes', String(classes)],
          ...shape,
          ...tail,
          ...['--threads', String(threads)],
        ],
        { OMP_WAIT_POLICY: 'PASSIVE' },
      ).trainStepMs as number,
  }
}

const ROWS: Record<string, Row> = {
  small: trainRow(
    'small',
    'DynUNet small, 2 × 32³, DSD training step',
    'small',
    '4,8,16,32,64',
    3,
    32,
    steps,
    2,
  ),
  mmwhs: trainRow(
    'mmwhs',
    'DynUNet mmwhs, 2 × 64³, DSD training step',
    'mmwhs',
    '32,64,128,256,320',
    8,
    64,
    Math.min(steps, 2),
    1,
  ),
  predict: {
    name: 'predict',
    what: 'sliding-window prediction, one hippocampus case, small network',
    ours: () => {
      const r = run(
        process.execPath,
        [
          '--import',
          'tsx',
          'bench/cpu/sliding-window.ts',
          '--runs',
          String(steps),
          '--warmup',
          '2',
          '--write-volume',
          volume,
        ],
        ourEnv,
      )
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

interface RoundResult {
  /** 1-minute load average before ours / before PyTorch ran */
  loadOurs: number
  loadTorch: number
  ours: number
  torch: number
  /** PyTorch on one thread (--torch-1), else null */
  torch1: number | null
  ratio: number
  /** ours / the faster of PyTorch on `threads` and on one thread (--torch-1), else null */
  ratioBest: number | null
  repeated: boolean
}

const results: {
  row: string
  what: string
  rounds: RoundResult[]
  ratio: number
  ratioBest: number | null
}[] = []
const f0 = (v: number) => v.toFixed(0)
for (const name of values.rows!.split(',')) {
  const row = ROWS[name]
  if (!row) throw new Error(`unknown row "${name}" (small, mmwhs, predict)`)
  const rec = {
    row: name,
    what: row.what,
    rounds: [] as RoundResult[],
    ratio: 0,
    ratioBest: null as number | null,
  }
  for (let r = 0; r < rounds; r++) {
    let res: RoundResult | null = null
    for (let attempt = 0; attempt < 2; attempt++) {
      const quiet = waitForQuiet()
      process.stderr.write(
        `${name}: round ${r + 1}/${rounds}${attempt ? ' (repeat: load was high)' : ''}, load ${quiet}\n`,
      )
      // alternate who goes first, so that slow drift in the machine's load does not favour one side
      const order = r % 2 === 0 ? ['ours', 'torch'] : ['torch', 'ours']
      let ours = 0
      let torch = 0
      let torch1: number | null = null
      let loadOurs = 0
      let loadTorch = 0
      for (const who of order) {
        if (who === 'ours') {
          loadOurs = load1()
          ours = row.ours()
        } else {
          if (name === 'predict' && !volumeShape) ours = row.ours() // the volume comes from ours
          loadTorch = load1()
          torch = row.torch(threads)
          if (values['torch-1']) torch1 = threads > 1 ? row.torch(1) : torch
        }
      }
      res = {
        loadOurs,
        loadTorch,
        ours,
        torch,
        torch1,
        ratio: ours / torch,
        ratioBest: torch1 === null ? null : ours / Math.min(torch, torch1),
        repeated: attempt > 0,
      }
      process.stderr.write(
        `${name}: ours ${f0(ours)} ms (load ${loadOurs}), PyTorch ${f0(torch)} ms on ${threads} threads (load ${loadTorch})${torch1 === null ? '' : `, ${f0(torch1)} ms on 1`} → ${res.ratio.toFixed(2)}×\n`,
      )
      if (Math.max(loadOurs, loadTorch) <= maxLoad || maxLoad === Infinity) break
    }
    rec.rounds.push(res!)
  }
  rec.ratio = median(rec.rounds.map((x) => x.ratio))
  if (values['torch-1']) rec.ratioBest = median(rec.rounds.map((x) => x.ratioBest!))
  results.push(rec)
}

const header = {
  cpu: cpus()[0]?.model ?? 'CPU',
  cores,
  threads,
  python: PY,
  torch: python.torch,
  node: process.version,
  date: new Date().toISOString(),
}
if (values.json) {
  console.log(JSON.stringify({ ...header, results }, null, 2))
} else {
  console.log(
    `${header.cpu}, ${cores} cores; ours and PyTorch ${header.torch} (${PY}) on ${threads} threads; ${header.date}`,
  )
  console.log('ms are medians per run (one per round); ratio = ours / PyTorch, median over rounds')
  const one = values['torch-1'] === true
  console.log(
    `| what | ours (ms) | PyTorch ${threads} threads (ms) |${one ? ' PyTorch 1 thread (ms) |' : ''} load (1 min) | ratio |`,
  )
  console.log(`|---|---|---|${one ? '---|' : ''}---|---|`)
  for (const r of results) {
    const f = (xs: (number | null)[]) => xs.map((v) => (v === null ? '–' : f0(v))).join(' / ')
    console.log(
      `| ${r.what} | ${f(r.rounds.map((x) => x.ours))} | ${f(r.rounds.map((x) => x.torch))} |${one ? ` ${f(r.rounds.map((x) => x.torch1))} |` : ''} ${r.rounds.map((x) => `${x.loadOurs}/${x.loadTorch}`).join(', ')} | ${r.rounds.map((x) => x.ratio.toFixed(2)).join(' / ')} (median **${r.ratio.toFixed(2)}×**${r.ratioBest === null ? '' : `; vs the faster PyTorch ${r.ratioBest.toFixed(2)}×`}) |`,
    )
  }
}
