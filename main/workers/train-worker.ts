/**
 * Training worker entry (a worker_threads thread): runs one training run and reports over
 * parentPort. Pause/cancel arrive through the shared control word, so a long synchronous
 * step never blocks them.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { trainRun } from '../services/trainer'
import type { TrainMessage, TrainWorkerData } from './protocol'

const data = workerData as TrainWorkerData
const post = (m: TrainMessage) => parentPort!.postMessage(m)

await trainRun({
  workspace: data.workspace,
  runId: data.runId,
  control: new Int32Array(data.control),
  post,
})
