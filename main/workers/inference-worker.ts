/**
 * Inference worker entry (a worker_threads thread, started by the `predict`, `evaluate` and
 * `export` job kinds): runs one prediction (`predictSet` → `predictCases`, what `dsd predict`
 * runs), one evaluation (`evaluateSet`, what `dsd evaluate --run` runs) or one export
 * (`runExport`, what `dsd export` runs) off the main thread, so the app's server and IPC stay
 * responsive. Progress is in cases; cancel arrives through the job's shared
 * control word, read before each case and between sliding windows.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { toErrorShape } from '../errors'
import { CONTROL, type InferenceMessage, type InferenceWorkerData } from './protocol'

const data = workerData as InferenceWorkerData
const word = new Int32Array(data.control)
const post = (m: InferenceMessage) => parentPort!.postMessage(m)
const abort = new AbortController()
/** Turns a cancel asked through the control word into the AbortSignal the services read. */
const check = () => {
  if (!abort.signal.aborted && Atomics.load(word, 0) === CONTROL.cancel) abort.abort()
}

try {
  // The services' own modules, loaded here (not at the top) so a failed import is reported.
  const { predictSet, evaluateSet } = await import('../services/predict-evaluate')
  if (data.task === 'predict') {
    const { initBackend } = await import('../engine/backends')
    const { readRunConfig } = await import('../workspace/runs')
    const chosen = await initBackend((await readRunConfig(data.workspace, data.request.runIds[0])).backend)
    post({ type: 'started', backend: { name: chosen.name, reason: chosen.reason, ...(chosen.device ? { device: chosen.device } : {}) } })
    const result = await predictSet(data.workspace, data.request, {
      signal: abort.signal,
      onProgress: (p) => {
        check()
        const windows = p.window ? ` · window ${p.window.done} / ${p.window.total}` : ''
        const model = p.models && p.models > 1 ? ` · model ${(p.model ?? 0) + 1} / ${p.models}` : ''
        const done = p.caseIndex + (p.stage === 'done' ? 1 : 0)
        post({ type: 'progress', done, total: p.cases, message: `case ${p.caseIndex + 1} / ${p.cases} ${p.caseId}: ${p.stage}${model}${windows}` })
      },
    })
    post({ type: 'done', result })
  } else if (data.task === 'export') {
    const { runExport } = await import('../services/export-job')
    const result = await runExport(data.workspace, data.request, {
      signal: abort.signal,
      progress: (done, total, message) => {
        check()
        post({ type: 'progress', done, total, message })
      },
    })
    post({ type: 'done', result })
  } else {
    const { table, files } = await evaluateSet(data.workspace, data.ref, {
      signal: abort.signal,
      onProgress: (done, total, caseId) => {
        check()
        post({ type: 'progress', done, total, message: `case ${done} / ${total} ${caseId}` })
      },
    })
    const cases = new Set(table.rows.map((r) => r.caseId)).size
    post({ type: 'done', result: { ref: data.ref, table: table.name, cases, meanDice: table.summary.overall.dice.mean ?? null, files } })
  }
} catch (err) {
  post({ type: 'error', error: toErrorShape(err) })
}
