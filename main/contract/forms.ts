/**
 * The bounds of the app's number fields, read from the contract's request schemas — the one
 * source of truth for what a form accepts. The renderer cannot import zod schemas (it imports
 * only types from the contract), so `forms.limits` sends these rules and the forms check each
 * field against them as it is typed, showing the problem on the field (they never clamp).
 */
import { z } from 'zod'
import type { NumberRule } from './index'

type JsonSchema = {
  type?: string | string[]
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  multipleOf?: number
  properties?: Record<string, JsonSchema>
  prefixItems?: JsonSchema[]
  anyOf?: JsonSchema[]
}

function rule(s: JsonSchema): NumberRule | null {
  const type = Array.isArray(s.type) ? s.type.find((t) => t === 'number' || t === 'integer') : s.type
  if (type !== 'number' && type !== 'integer') return null
  const out: NumberRule = { integer: type === 'integer' }
  if (s.minimum !== undefined && s.minimum > Number.MIN_SAFE_INTEGER) out.min = s.minimum
  if (s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER) out.max = s.maximum
  if (s.exclusiveMinimum !== undefined) {
    if (out.integer) out.min = Math.max(out.min ?? -Infinity, s.exclusiveMinimum + 1)
    else out.above = s.exclusiveMinimum
  }
  if (s.multipleOf !== undefined) out.multipleOf = s.multipleOf
  return out
}

/**
 * Field path → rule for every number of an object schema: `batch`, `weights.eta`; a tuple of
 * numbers (the patch) gives one rule under its own name.
 */
export function numberRules(schema: z.ZodType, extra: Record<string, Partial<NumberRule>> = {}): Record<string, NumberRule> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
  const out: Record<string, NumberRule> = {}
  const walk = (s: JsonSchema, path: string) => {
    for (const alt of s.anyOf ?? []) walk(alt, path)
    const r = rule(s)
    if (r && path) out[path] = r
    if (s.prefixItems?.length) {
      const first = rule(s.prefixItems[0])
      if (first) out[path] = first
    }
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, path ? `${path}.${k}` : k)
  }
  walk(json, '')
  for (const [k, v] of Object.entries(extra)) if (out[k]) out[k] = { ...out[k], ...v }
  return out
}
