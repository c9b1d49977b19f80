/** How an error crosses the contract (IPC, HTTP, WebSocket, in-process). */
export interface ErrorShape {
  /** Stable machine-readable code, e.g. NIFTI_TRUNCATED, VALIDATION, NOT_FOUND. */
  code: string
  /** One human sentence naming the file, the problem and the fix. */
  message: string
  details: Record<string, unknown>
}
