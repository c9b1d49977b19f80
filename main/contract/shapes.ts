/** Shapes shared by several parts of the contract. */
import { z } from 'zod'

/** An id that names a file or folder in the workspace (dataset, split, run). */
export const id = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._-]+$/, 'only letters, digits, ".", "_" and "-"')

/** The compute backends, fastest first (main/engine/backends.ts probes them). */
export const BackendName = z.enum(['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'])
export type BackendName = z.infer<typeof BackendName>

