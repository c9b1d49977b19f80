/**
 * Checks of the forms' number fields against the contract's bounds (`forms.limits`, read from
 * the request schemas on the main side: one source of truth). A field out of range shows the
 * problem on the field and keeps the form from being sent — it is never clamped or reset.
 */
import { ref } from 'vue'
import type { NumberRule } from '../../main/contract'
import { toApiError, useApi } from './api'

export type FormRules = Record<string, NumberRule>

const limits = ref<Record<string, FormRules> | null>(null)
let loading: Promise<void> | null = null

/** The bounds of every form (loaded once per window). */
export function useFormLimits() {
  const api = useApi()
  if (!loading) {
    loading = api
      .invoke('forms.limits', {})
      .then((r) => {
        limits.value = r.forms
      })
      .catch(() => {
        loading = null // tried again by the next form; the main side still checks on send
      })
  }
  return limits
}

const fmt = (n: number) => (Math.abs(n) >= 1e6 ? n.toExponential(0) : String(n))

/** The problem with a field's value, or null. `required`: an empty field is a problem too. */
export function numberProblem(value: number | null | undefined, rule: NumberRule | undefined, required = false): string | null {
  if (value === null || value === undefined || Number.isNaN(value)) return required ? 'Required.' : null
  if (!rule) return null
  if (rule.integer && !Number.isInteger(value)) return 'Must be a whole number.'
  if (rule.min !== undefined && value < rule.min) return `Must be at least ${fmt(rule.min)}.`
  if (rule.max !== undefined && value > rule.max) return `Must be at most ${fmt(rule.max)}.`
  if (rule.above !== undefined && !(value > rule.above)) return `Must be greater than ${fmt(rule.above)}.`
  if (rule.multipleOf !== undefined && value % rule.multipleOf !== 0) return `Must be a multiple of ${fmt(rule.multipleOf)}.`
  return null
}

/**
 * The field problems a refused command reports (zod issues in `details.issues`, from the
 * bridge's VALIDATION or a config check), keyed by the form's field names: `patch` for
 * `patch.0` or `model.patch`, `weights.eta`, `batch`.
 */
export function issuesByField(err: unknown, fields: readonly string[]): Record<string, string> {
  const e = toApiError(err)
  const issues = (e.details?.issues ?? []) as { path?: (string | number)[]; message?: string }[]
  const out: Record<string, string> = {}
  for (const issue of Array.isArray(issues) ? issues : []) {
    const path = (issue.path ?? []).filter((p): p is string => typeof p === 'string')
    const key = [path.join('.'), path.slice(1).join('.'), path.at(-1) ?? ''].find((k) => k && fields.includes(k))
    if (key && !out[key]) out[key] = issue.message ?? 'Not accepted.'
  }
  return out
}
