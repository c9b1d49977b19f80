/** How an error crosses the contract (IPC, HTTP, WebSocket, in-process). */
import { z } from 'zod'

export const ErrorShape = z.object({
  /** Stable machine-readable code, e.g. NIFTI_TRUNCATED, VALIDATION, NOT_FOUND. */
  code: z.string(),
  /** One human sentence naming the file, the problem and the fix. */
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
  /**
   * The same sentence in the app's terms, where `message` names CLI flags or commands (e.g.
   * "choose fewer folds on the Splits page" for "use --folds 8 or fewer"). The app shows it
   * instead of `message`; the CLI prints `message`.
   */
  appMessage: z.string().optional(),
})
export type ErrorShape = z.infer<typeof ErrorShape>
