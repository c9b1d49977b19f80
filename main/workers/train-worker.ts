/**
 * Training worker entry (a worker_threads thread, started by the `train` job kind): runs one
 * training run and reports over parentPort. Pause and cancel arrive through the job's shared
 * control word, so a long synchronous step never blocks them.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { trainRun, type TrainControl, type TrainMessage } from '../training/loop'
import { CONTROL, type TrainWorkerData } from './protocol'

const data = workerData as TrainWorkerData
const word = new Int32Array(data.control)
const control: TrainControl = {
  requested: () => {
    const v = Atomics.load(word, 0)
    return v === CONTROL.pause ? 'pause' : v === CONTROL.cancel ? 'cancel' : 'run'
  },
  waitWhilePaused: (ms) => void Atomics.wait(word, 0, CONTROL.pause, ms),
}

await trainRun({
  workspace: data.workspace,
  runId: data.runId,
  control,
  post: (m: TrainMessage) => parentPort!.postMessage(m),
})
