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

async function datasetService(workspace: string) {
  const mod = await import('./datasets')
  return mod.createDatasetService(workspace)
}

export function createApp(options: AppOptions): App {
  // eslint-disable-next-line prefer-const -- handlers and bridge refer to each other
  let bridge: Bridge
  const tasks = (): TaskRunner => runner
  const handlers: Handlers = {
    'app.info': async () => {
      const versions = process.versions as NodeJS.ProcessVersions & {
        electron?: string
        chrome?: string
      }
      return {
        name: 'DSD Studio',
        version: appVersion(),
        transport: options.transport,
        platform,
        arch,
        versions: {
          node: versions.node,
          v8: versions.v8,
          electron: versions.electron ?? null,
          chrome: versions.chrome ?? null,
          tfjs: await tfjsVersion(),
        },
        workspace: options.workspace,
        ...(await backendInfo()),
      }
    },
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
    'tasks.cancel': async ({ taskId }) => ({ cancelled: runner.cancel(taskId) }),
  }
  bridge = new Bridge(handlers, { validateResponses: options.validateResponses })
  const runner = new TaskRunner(bridge)
  return {
    bridge,
    tasks: runner,
    options,
    close: async () => {
      await runner.idle()
    },
  }
}
