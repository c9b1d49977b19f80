import type { ErrorShape } from '../../../main/contract'

/** A failed command, carrying the contract's `{ code, message, details }`. */
export class ApiError extends Error implements ErrorShape {
  readonly code: string
  readonly details: Record<string, unknown>

  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ApiError'
    this.code = code
    this.details = details
  }

  /**
   * The error of a failed command or job as the app shows it: the message in the app's words
   * (`appMessage`: app actions instead of CLI flags) when the main side gave one.
   */
  static fromShape(e: ErrorShape): ApiError {
    return new ApiError(e.code, e.appMessage ?? e.message, e.details ?? {})
  }
}

/** Any thrown value as an ApiError (keeps the code and details when there are some). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof Error) return new ApiError('CLIENT', err.message)
  return new ApiError('CLIENT', String(err))
}

/** The bytes of a data-channel answer, or its `{ code, message }` error as an ApiError. */
export async function volumeBody(response: Response, path: string): Promise<ArrayBuffer> {
  if (response.ok) return response.arrayBuffer()
  let error: { code?: string; message?: string } = {}
  try {
    error = (await response.json()) as typeof error
  } catch {
    // not JSON: the status says enough
  }
  throw new ApiError(
    error.code ?? `HTTP_${response.status}`,
    error.message ?? `The volume ${path} could not be loaded (HTTP ${response.status}).`,
    { path, status: response.status },
  )
}
