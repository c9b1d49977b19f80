/**
 * The application's services behind the contract: one object per running app (Electron main
 * process, `dsd serve`, or a test), wiring command handlers to the data, engine and workspace
 * layers. Heavy modules (TensorFlow.js, dataset code) load lazily on first use.
 */
import { arch, platform } from 'node:process'
import type { AppInfo, BackendProbe, CommandParams } from '../contract'
import { appVersion } from '../version'
import { Bridge, type Handlers } from './bridge'
import { TaskRunner } from './tasks'

export interface AppOptions {
  /** Workspace root folder (datasets, splits, runs). */
  workspace: string
  transport: AppInfo['transport']
  /** Validate handler responses against the contract (tests, development). */
  validateResponses?: boolean
}

export interface App {
  bridge: Bridge
  tasks: TaskRunner
  options: AppOptions
  close(): Promise<void>
}

type BackendReport = Pick<AppInfo, 'backend' | 'backends'>

let backendReport: Promise<BackendReport> | undefined

/** Probe the compute backends once per process (WebGPU probing starts Dawn). */
export function backendInfo(): Promise<BackendReport> {
  backendReport ??= (async () => {
    try {
      const { probeBackends, chooseBackend } = await import('../engine/backends')
      const backends = (await probeBackends()) as BackendProbe[]
      const chosen = chooseBackend(backends)
      const device = backends.find((b) => b.name === chosen.name)?.device
      return { backend: { name: chosen.name, reason: chosen.reason, device }, backends }
    } catch (err) {
      return {
        backend: { name: null, reason: `backend probe failed: ${(err as Error).message}` },
        backends: [],
      }
    }
  })()
  return backendReport
}

async function tfjsVersion(): Promise<string | null> {
  try {
    const { readFile } = await import('node:fs/promises')
    const { createRequire } = await import('node:module')
    const require = createRequire(import.meta.url)
    const pkg = require.resolve('@tensorflow/tfjs-core/package.json')
    return (JSON.parse(await readFile(pkg, 'utf8')) as { version: string }).version
  } catch {
    return null
  }
}

/** What `app.info` and `dsd info` report: versions, backend in use and why, the ladder. */
export async function appInfo(transport: AppInfo['transport'], workspace: string): Promise<AppInfo> {
  const versions = process.versions as NodeJS.ProcessVersions & { electron?: string; chrome?: string }
  return {
    name: 'DSD Studio',
    version: appVersion(),
    transport,
    platform,
    arch,
    versions: {
      node: versions.node,
      v8: versions.v8,
      electron: versions.electron ?? null,
      chrome: versions.chrome ?? null,
      tfjs: await tfjsVersion(),
    },
    workspace,
    ...(await backendInfo()),
  }
}

/** The contract's summary of a run. */
async function runSummary(workspace: string, runId: string) {
  const { readRunConfig, readRunState } = await import('../workspace/runs')
  const config = await readRunConfig(workspace, runId)
  return {
    id: config.id,
    datasetId: config.datasetId,
    split: config.split,
    fold: config.fold,
    variant: config.variant,
    backbone: config.model.backbone,
    preset: config.model.preset,
    state: await readRunState(workspace, runId),
  }
}

async function datasetService(workspace: string) {
  const mod = await import('./datasets')
  return mod.createDatasetService(workspace)
}

export function createApp(options: AppOptions): App {
  // eslint-disable-next-line prefer-const -- handlers and bridge refer to each other
  let bridge: Bridge
  const tasks = (): TaskRunner => runner
  let queue: import('./jobs').JobQueue | undefined
  /** The job queue, created on first use; its worker messages become contract events. */
  const jobs = async () => {
    if (!queue) {
      const { JobQueue } = await import('./jobs')
      queue = new JobQueue(options.workspace)
      queue.on('message', (runId, m) => {
        if (m.type === 'step') {
          const { type: _t, ...rest } = m
          bridge.emit('run.step', { runId, ...rest })
        } else if (m.type === 'epoch') {
          bridge.emit('run.epoch', { runId, log: m.log, seconds: m.timing.seconds, state: m.state })
        } else if (m.type === 'state' || m.type === 'done') {
          bridge.emit('run.state', { runId, state: m.state })
        } else if (m.type === 'error' && m.state) {
          bridge.emit('run.state', { runId, state: m.state, error: m.error.message })
        }
      })
    }
    return queue
  }
  const startRun = async (runId: string) => {
    const q = await jobs()
    // The queue resolves when the run ends; failures are reported as run.state events.
    q.enqueue(runId).catch(() => undefined)
  }
  const handlers: Handlers = {
    'app.info': () => appInfo(options.transport, options.workspace),
    'app.ping': async ({ message }) => {
      setImmediate(() => bridge.emit('app.pong', { message }))
      return { message, receivedAt: new Date().toISOString() }
    },
    'datasets.list': async () => {
      const svc = await datasetService(options.workspace)
      return { datasets: await svc.listSummaries() }
    },
    'datasets.import': async (p: CommandParams<'datasets.import'>) => {
      const svc = await datasetService(options.workspace)
      const taskId = tasks().start('datasets.import', (ctx) =>
        svc.importForTask(p, ctx),
      )
      return { taskId }
    },
    'datasets.audit': async ({ datasetId }) => {
      const svc = await datasetService(options.workspace)
      await svc.requireDataset(datasetId)
      const taskId = tasks().start('datasets.audit', (ctx) => svc.auditForTask(datasetId, ctx))
      return { taskId }
    },
    'splits.list': async ({ datasetId }) => {
      const svc = await datasetService(options.workspace)
      return { splits: await svc.listSplitSummaries(datasetId) }
    },
    'splits.create': async (p) => {
      const svc = await datasetService(options.workspace)
      return svc.createSplitSummary(p)
    },
    'runs.list': async () => {
      const { listRuns } = await import('../workspace/runs')
      const runs = await listRuns(options.workspace)
      const summaries = await Promise.all(runs.map((r) => runSummary(options.workspace, r.config.id)))
      return { runs: summaries, running: queue?.running ?? null, queued: queue?.queued ?? [] }
    },
    'runs.get': async ({ runId }) => {
      const { readRunConfig, readRunLog } = await import('../workspace/runs')
      return {
        summary: await runSummary(options.workspace, runId),
        config: (await readRunConfig(options.workspace, runId)) as unknown as Record<string, unknown>,
        log: await readRunLog(options.workspace, runId),
      }
    },
    'runs.create': async (f) => {
      const { createRuns } = await import('./training')
      const configs = await createRuns(options.workspace, {
        datasetId: f.datasetId,
        split: f.split,
        folds: f.folds,
        variants: f.variants,
        name: f.name,
        model: { backbone: f.backbone, preset: f.preset, patch: f.patch },
        loss: { ...(f.weights ?? { eta: 1, alpha1: 1, alpha2: 1 }), temperature: f.temperature },
        batch: f.batch,
        epochs: f.epochs,
        ...(f.stepsPerEpoch ? { stepsPerEpoch: f.stepsPerEpoch } : {}),
        optimizer: { lr: f.lr, weightDecay: f.weightDecay },
        schedule: { stepSize: Math.max(1, Math.floor(f.epochs / 6)), gamma: 0.5 },
        seed: f.seed,
        backend: f.backend,
        validateEvery: f.validateEvery,
        inference: { overlap: 0.25, blend: 'constant', mirror: false },
        preprocessing: { preset: f.preprocess },
        augment: f.augment,
      })
      for (const c of configs) await startRun(c.id)
      return { runIds: configs.map((c) => c.id) }
    },
    'runs.control': async ({ runId, action }) => {
      const q = await jobs()
      if (action === 'start') {
        if (q.running === runId || q.queued.includes(runId)) return { accepted: false }
        await runSummary(options.workspace, runId) // must exist
        await startRun(runId)
        return { accepted: true }
      }
      const accepted = action === 'pause' ? q.pause(runId) : action === 'continue' ? q.resume(runId) : q.cancel(runId)
      return { accepted }
    },
    // Review (read-only, main/services/review.ts): prediction sets, metric tables, one case.
    'predictions.list': async () => (await import('./review')).listPredictionSets(options.workspace),
    'metrics.get': async ({ ref, table }) => (await import('./review')).getMetrics(options.workspace, ref, table),
    'review.case': async ({ ref, caseId }) => (await import('./review')).reviewCase(options.workspace, ref, caseId),
    'tasks.list': async () => ({ tasks: runner.list() }),
    'tasks.cancel': async ({ taskId }) => ({ cancelled: runner.cancel(taskId) }),
  }
  bridge = new Bridge(handlers, { validateResponses: options.validateResponses })
  const runner = new TaskRunner(bridge)
  return {
    bridge,
    tasks: runner,
    options,
    close: async () => {
      await queue?.close()
      await runner.idle()
    },
  }
}
