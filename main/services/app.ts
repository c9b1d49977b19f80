/**
 * The application's services behind the contract: one object per running app (Electron main
 * process, `dsd serve`, or a test), wiring command handlers to the data, engine and workspace
 * layers. Heavy modules (TensorFlow.js, dataset code) load lazily on first use.
 */
import { arch, platform } from 'node:process'
import { JOB_ENDED, type AppInfo, type BackendProbe, type CommandParams, type EventPayload, type RunConfig, type RunState, type RunSummary } from '../contract'
import { DsdError } from '../errors'
import type { JobSystem } from '../jobs/system'
import { throttle, type Throttle } from '../jobs/throttle'
import { appVersion } from '../version'
import type { TrainMessage } from '../training/loop'
import { Bridge, type Handlers } from './bridge'
import { createJobSystem } from './jobs'

export interface AppOptions {
  /** Workspace root folder (datasets, splits, runs). */
  workspace: string
  transport: AppInfo['transport']
  /** Validate handler responses against the contract (tests, development). */
  validateResponses?: boolean
  /** Heap cap of each training worker in MB (default DSD_WORKER_HEAP_MB, else Node's). */
  workerHeapMb?: number
  /**
   * Show a folder in the system file manager (Electron: `shell.openPath`; resolves to '' or an
   * error text). Absent in browser mode and the CLI: `export.open` then answers the path only.
   */
  openFolder?: (folder: string) => Promise<string>
}

export interface App {
  bridge: Bridge
  /** Every long operation (import, audit, training) as a job; the list is kept in the workspace. */
  jobs: JobSystem
  /** Resolves once the stored job list is read (and its queued jobs queued again). */
  ready: Promise<void>
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

const ENDED_RUN = new Set(['completed', 'failed', 'cancelled'])

/** The contract's summary of a run, from its config and state as read once, and its times. */
async function runSummary(workspace: string, config: RunConfig, state: RunState): Promise<RunSummary> {
  const { readRunTimes } = await import('../workspace/runs')
  const times = await readRunTimes(workspace, config.id)
  return {
    id: config.id,
    datasetId: config.datasetId,
    split: config.split,
    fold: config.fold,
    variant: config.variant,
    backbone: config.model.backbone,
    preset: config.model.preset,
    state,
    startedAt: times.startedAt,
    endedAt: times.startedAt && ENDED_RUN.has(state.status) ? state.updatedAt : null,
    trainingSeconds: times.trainingSeconds,
  }
}

async function datasetService(workspace: string) {
  const mod = await import('./datasets')
  return mod.createDatasetService(workspace)
}

/** Minimum time between `run.step` events of one run (the last step of an epoch always goes). */
const RUN_STEP_INTERVAL_MS = 250

export function createApp(options: AppOptions): App {
  // eslint-disable-next-line prefer-const -- handlers and bridge refer to each other
  let bridge: Bridge
  const steps = new Map<string, Throttle<EventPayload<'run.step'>>>()
  /** A training worker's messages become run events (steps rate-limited). */
  const onRunMessage = (runId: string, m: TrainMessage) => {
    if (m.type === 'step') {
      let t = steps.get(runId)
      if (!t) steps.set(runId, (t = throttle(RUN_STEP_INTERVAL_MS, (p) => bridge.emit('run.step', p))))
      const { type: _t, ...rest } = m
      t.push({ runId, ...rest }, m.step === m.steps)
    } else if (m.type === 'epoch') {
      steps.get(runId)?.flush()
      bridge.emit('run.epoch', { runId, log: m.log, seconds: m.timing.seconds, state: m.state })
    } else if (m.type === 'state' || m.type === 'done') {
      if (m.type === 'done') steps.get(runId)?.cancel()
      bridge.emit('run.state', { runId, state: m.state })
    } else if (m.type === 'error' && m.state) {
      steps.get(runId)?.cancel()
      bridge.emit('run.state', { runId, state: m.state, error: m.error.appMessage ?? m.error.message })
    }
  }
  const jobs = createJobSystem(options.workspace, { persist: true, workerHeapMb: options.workerHeapMb, onRunMessage })
  jobs.on('state', (info) => bridge.emit('job.state', info))
  jobs.on('progress', (p) => bridge.emit('job.progress', p))
  jobs.on('storeError', (err) => console.error(`dsd: ${err.message}`))
  // The startup sweep (what killed processes left: staging folders, temp files), then the
  // stored job list.
  const ready = import('../workspace/sweep')
    .then(({ sweepOnce }) => sweepOnce(options.workspace))
    .then(() => jobs.restore())
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
      await ready
      return { job: jobs.start('datasets.import', p) }
    },
    'datasets.audit': async (p) => {
      const svc = await datasetService(options.workspace)
      await svc.requireDataset(p.datasetId)
      await ready
      return { job: jobs.start('datasets.audit', p) }
    },
    'datasets.delete': async ({ datasetId }) => {
      const svc = await datasetService(options.workspace)
      await ready
      const busy = jobs.list().find((j) => j.subject === datasetId && !['completed', 'failed', 'cancelled'].includes(j.status))
      if (busy) {
        throw new DsdError('DATASET_BUSY', `dataset "${datasetId}" has a ${busy.status} job (${busy.label}); wait for it to end or cancel it, then delete the dataset`, { datasetId, jobId: busy.jobId })
      }
      return svc.deleteDataset(datasetId)
    },
    'splits.get': async ({ datasetId, name }) => {
      const svc = await datasetService(options.workspace)
      return svc.splitDetail(datasetId, name)
    },
    'splits.delete': async ({ datasetId, name }) => {
      const svc = await datasetService(options.workspace)
      return svc.deleteSplit(datasetId, name)
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
      return { runs: await Promise.all(runs.map((r) => runSummary(options.workspace, r.config, r.state))) }
    },
    'runs.get': async ({ runId }) => {
      const { readRunConfig, readRunLog, readRunState } = await import('../workspace/runs')
      const config = await readRunConfig(options.workspace, runId)
      return {
        summary: await runSummary(options.workspace, config, await readRunState(options.workspace, runId)),
        config,
        log: await readRunLog(options.workspace, runId),
      }
    },
    'runs.defaults': async () => {
      const { runFormDefaults } = await import('../training/run-config')
      return runFormDefaults()
    },
    'runs.create': async (form) => {
      const { createRuns } = await import('./training')
      await ready
      const configs = await createRuns(options.workspace, form)
      return { runIds: configs.map((c) => c.id), jobs: configs.map((c) => jobs.start('train', { runId: c.id })) }
    },
    'runs.resume': async ({ runId }) => {
      const { readRunState } = await import('../workspace/runs')
      await ready
      const job = jobs.latest('train', runId)
      if (job && (job.status === 'queued' || job.status === 'running' || job.status === 'paused')) {
        throw new DsdError('RUN_BUSY', `Run ${runId} is already ${job.status}.`, { runId, jobId: job.jobId })
      }
      const state = await readRunState(options.workspace, runId)
      if (state.status === 'completed') {
        throw new DsdError('RUN_COMPLETED', `Run ${runId} has completed its ${state.epochs} epochs; there is nothing to resume.`, { runId })
      }
      // Refused at once (the training job checks it too): its split changed under it.
      const { checkRunSplit } = await import('../workspace/cases')
      const { readRunConfig } = await import('../workspace/runs')
      await checkRunSplit(options.workspace, await readRunConfig(options.workspace, runId))
      return { job: jobs.start('train', { runId }) }
    },
    'runs.cancel': async ({ runId }) => {
      const { cancelRun } = await import('./runs')
      await ready
      const r = await cancelRun(options.workspace, jobs, runId)
      if (r.changed) bridge.emit('run.state', { runId, state: r.state })
      return { state: r.state }
    },
    'runs.delete': async ({ runId }) => {
      const { deleteRun } = await import('./runs')
      await ready
      return deleteRun(options.workspace, jobs, runId)
    },
    'forms.limits': async () => {
      const { numberRules } = await import('../contract/forms')
      const { commands, PATCH_MULTIPLE, RunForm } = await import('../contract')
      return {
        forms: {
          'runs.create': numberRules(RunForm, { patch: { multipleOf: PATCH_MULTIPLE } }),
          'splits.create': numberRules(commands['splits.create'].request),
        },
      }
    },
    'quickstart.start': async (p) => {
      const { prepareQuickStart } = await import('./quickstart')
      await ready
      const { runId, datasetId } = await prepareQuickStart(options.workspace, p)
      return { runId, datasetId, job: jobs.start('quickstart', { runId }) }
    },
    'jobs.list': async () => {
      await ready
      return { jobs: jobs.list() }
    },
    'jobs.control': async ({ jobId, action }) => ({ accepted: jobs.control(jobId, action) }),
    // Review (read-only, main/services/review.ts): prediction sets, metric tables, one case.
    'predictions.list': async () => (await import('./review')).listPredictionSets(options.workspace),
    'metrics.get': async ({ ref, table }) => (await import('./review')).getMetrics(options.workspace, ref, table),
    'review.case': async ({ ref, caseId }) => (await import('./review')).reviewCase(options.workspace, ref, caseId),
    // Prediction and evaluation as jobs (main/services/predict-evaluate.ts, the CLI's functions).
    'predictions.predict': async (req) => {
      const { checkPredictable, predictionTarget } = await import('./predict-evaluate')
      await ready
      await checkPredictable(options.workspace, req)
      const { ref, key } = predictionTarget(options.workspace, req)
      const busy = jobs.list().find((j) => (j.kind === 'predict' || j.kind === 'evaluate') && j.subject === key && !JOB_ENDED.includes(j.status))
      if (busy) throw new DsdError('PREDICTION_BUSY', `${key} is already being ${busy.kind === 'predict' ? 'predicted' : 'evaluated'} (${busy.status}); wait for it or cancel it in the Tasks panel.`, { jobId: busy.jobId })
      const job = jobs.start('predict', req)
      if (req.evaluate) {
        // Evaluate the set once its prediction has completed (a cancelled or failed one is not scored).
        void jobs.wait(job.jobId).then((end) => {
          if (end.status === 'completed') jobs.start('evaluate', { ref })
        }).catch((err: Error) => console.error(`dsd: could not queue the evaluation of ${key}: ${err.message}`))
      }
      return { job, ref, key }
    },
    'metrics.evaluate': async ({ ref }) => {
      const { readSet } = await import('./prediction-sets')
      await readSet(options.workspace, ref) // PREDICTIONS_NOT_FOUND now, not as a failed job
      await ready
      return { job: jobs.start('evaluate', { ref }) }
    },
    'metrics.compare': async ({ a, b, metrics }) => (await import('./predict-evaluate')).compareSets(options.workspace, a, b, metrics),
    // Export (main/services/export-job.ts): a job into <workspace>/exports/<name>/.
    'export.start': async (p) => {
      await (await import('./export-job')).checkExport(options.workspace, p)
      await ready
      return { job: jobs.start('export', p) }
    },
    'export.open': async ({ name }) => (await import('./export-job')).openExport(options.workspace, name, options.openFolder),
  }
  bridge = new Bridge(handlers, { validateResponses: options.validateResponses })
  return {
    bridge,
    jobs,
    ready,
    options,
    close: async () => {
      await ready
      await jobs.close()
      for (const t of steps.values()) t.cancel()
    },
  }
}
