/**
 * Start a worker thread on one of the workers/ entries, from the TypeScript sources (through
 * the tsx bootstrap) or from the bundled build (a sibling `<name>.mjs`).
 */
import { existsSync } from 'node:fs'
import { Worker, type WorkerOptions } from 'node:worker_threads'
import type { WorkerName } from './protocol'

export function spawnWorker(name: WorkerName, options: WorkerOptions = {}): Worker {
  const here = import.meta.url
  if (here.endsWith('.ts')) {
    const entry = new URL(`./${name}.ts`, here).href
    return new Worker(new URL('./bootstrap.mjs', here), {
      ...options,
      workerData: { ...(options.workerData as object), entry },
    })
  }
  const bundled = new URL(`./${name}.mjs`, here)
  if (!existsSync(bundled)) throw new Error(`worker bundle ${bundled.pathname} is missing; run npm run build`)
  return new Worker(bundled, options)
}
