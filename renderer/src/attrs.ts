import type { HTMLAttributes, InputHTMLAttributes } from 'vue'

/**
 * Extra attributes (data-testid, data-*) for Naive UI's `row-props` / `input-props`, whose
 * types do not admit `data-*` keys.
 */
export function dataAttrs(attrs: Record<string, string>): HTMLAttributes {
  return attrs as HTMLAttributes
}

/** `input-props` for a Naive UI input: its DOM id (for <label for>) and an optional test id. */
export function inputAttrs(
  id: string,
  testId?: string,
  extra: InputHTMLAttributes = {},
): InputHTMLAttributes {
  return { id, ...extra, ...(testId ? { 'data-testid': testId } : {}) } as InputHTMLAttributes
}
