import type { ErrorShape } from './contract/errors'

/**
 * The one error type services throw. It crosses every transport as
 * `{ code, message, details }` (see main/contract/errors.ts). Messages name the file,
 * the problem and the fix, e.g.
 *   new DsdError('NIFTI_TRUNCATED', `${file}: file ends at byte 1200 but the header needs 5000; re-export or re-download it`, { file })
 */
export class DsdError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    /** The message in the app's terms when `message` names CLI flags (see ErrorShape.appMessage). */
    readonly appMessage?: string,
  ) {
    super(message)
    this.name = 'DsdError'
  }

  toJSON(): ErrorShape {
    return {
      code: this.code,
      message: this.message,
      details: this.details,
      ...(this.appMessage ? { appMessage: this.appMessage } : {}),
    }
  }
}

/** Any thrown value as the contract's error shape. */
export function toErrorShape(err: unknown): ErrorShape {
  if (err instanceof DsdError) return err.toJSON()
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return { code: typeof code === 'string' ? code : 'INTERNAL', message: err.message, details: {} }
  }
  return { code: 'INTERNAL', message: String(err), details: {} }
}

/** Error codes that mean "no room to write": a full disk, a quota or a file-size limit. */
export function isNoSpace(code: unknown): boolean {
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG'
}
