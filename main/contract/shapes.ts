/** Shapes shared by several parts of the contract. */
import { z } from 'zod'
import { SafeId } from './ids'

/** An id that names a file or folder in the workspace (dataset, split, run): main/contract/ids.ts. */
export const id = SafeId

/** The compute backends, fastest first (main/engine/backends.ts probes them). */
export const BackendName = z.enum(['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'])
export type BackendName = z.infer<typeof BackendName>

