// Worker bootstrap for running the TypeScript sources directly (CLI, tests): registers tsx in
// this worker thread, then loads the real entry. The bundled Electron build starts the bundled
// worker file instead and never uses this.
import { workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
await import(workerData.entry)
