/**
 * `dsd model`: layer summary and parameter counts of a DSD network (no tensors are created,
 * so the 100 M-parameter UNETR at 96³ prints instantly).
 */
import { describeModel, PRESETS, type Backbone, type ModelConfig } from '../engine/model'
import { CliError, intOption, parse, printJson } from './args'

export const summary = 'Show a DSD network: layers, backbone and DSD parameter counts, overhead'

export const usage = `Usage: dsd model [--backbone dynunet|unetr] [--preset NAME] [options] [--json]

Describes SelfDistilDynUNet or SelfDistilUNETR (docs/engine.md) without allocating it.

Options:
  --backbone B        dynunet (default) or unetr
  --preset NAME       dynunet: ${Object.keys(PRESETS.dynunet).join(', ')}; unetr: ${Object.keys(PRESETS.unetr).join(', ')} (default small)
  --in N              input channels (default from the preset)
  --classes K         classes including background (default from the preset)
  --patch N|DxHxW     training patch, multiples of 16 (default from the preset)
  --filters a,b,c,d,e dynunet: channels of the 5 levels
  --feature-size F    unetr: feature size
  --hidden H --layers L --heads N --mlp M   unetr: ViT size
  --json              print JSON: { backbone, preset, config, params: { backbone, dsd, total },
                      overheadPercent, layers: [...] }

Example: dsd model --backbone unetr --preset mmwhs --json`

/** Parse `N` or `DxHxW`. */
export function parsePatch(value: string | undefined): [number, number, number] | undefined {
  if (value === undefined) return undefined
  const parts = value.split(/[x×,]/).map((s) => Number(s.trim()))
  if (
    parts.some((n) => !Number.isInteger(n) || n <= 0) ||
    (parts.length !== 1 && parts.length !== 3)
  ) {
    throw new CliError(`--patch must be N or DxHxW with positive integers, got "${value}"`)
  }
  return (parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts) as [number, number, number]
}

/** Parse the options shared by `dsd model` and `dsd bench` into a model config. */
export function modelConfigFromOptions(
  v: Record<string, string | boolean | undefined>,
): ModelConfig {
  const backbone = (v.backbone ?? 'dynunet') as string
  if (backbone !== 'dynunet' && backbone !== 'unetr') {
    throw new CliError(`--backbone must be dynunet or unetr, got "${backbone}"`)
  }
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined)
  const opt = (k: string) => {
    const s = str(k)
    return s === undefined ? undefined : intOption(k, s, 0)
  }
  const cfg: ModelConfig = { backbone: backbone as Backbone, preset: str('preset') ?? 'small' }
  if (!Object.hasOwn(PRESETS[cfg.backbone], cfg.preset!)) {
    throw new CliError(
      `unknown ${backbone} preset "${cfg.preset}"; choose one of ${Object.keys(PRESETS[cfg.backbone]).join(', ')}`,
    )
  }
  const set = <K extends keyof ModelConfig>(k: K, val: ModelConfig[K] | undefined) => {
    if (val !== undefined) cfg[k] = val
  }
  set('inChannels', opt('in'))
  set('numClasses', opt('classes'))
  set('patch', parsePatch(str('patch')))
  const filters = str('filters')
  if (filters !== undefined) {
    const f = filters.split(',').map((s) => Number(s.trim()))
    if (f.length !== 5 || f.some((n) => !Number.isInteger(n) || n <= 0)) {
      throw new CliError(`--filters must be 5 comma-separated positive integers, got "${filters}"`)
    }
    cfg.filters = f
  }
  set('featureSize', opt('feature-size'))
  set('hidden', opt('hidden'))
  set('layers', opt('layers'))
  set('heads', opt('heads'))
  set('mlp', opt('mlp'))
  if (
    backbone === 'dynunet' &&
    ['feature-size', 'hidden', 'layers', 'heads', 'mlp'].some((k) => str(k) !== undefined)
  ) {
    throw new CliError(
      '--feature-size/--hidden/--layers/--heads/--mlp apply to --backbone unetr only',
    )
  }
  if (backbone === 'unetr' && filters !== undefined)
    throw new CliError('--filters applies to --backbone dynunet only')
  return cfg
}

/** Option spec shared with `dsd bench`. */
export const MODEL_OPTIONS = {
  backbone: { type: 'string' },
  preset: { type: 'string' },
  in: { type: 'string' },
  classes: { type: 'string' },
  patch: { type: 'string' },
  filters: { type: 'string' },
  'feature-size': { type: 'string' },
  hidden: { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  mlp: { type: 'string' },
} as const

const fmt = (n: number) => n.toLocaleString('en-US')

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...MODEL_OPTIONS, json: { type: 'boolean' } },
    false,
  )
  void positionals
  const cfg = modelConfigFromOptions(values)
  let d
  try {
    d = describeModel(cfg)
  } catch (err) {
    const e = err as { code?: string; message?: string }
    if (e.code === 'MODEL_CONFIG') throw new CliError(e.message!.replace(/^model config: /, ''))
    throw err
  }
  const c = d.config
  if (values.json) {
    printJson({
      backbone: c.backbone,
      preset: c.preset,
      config: c,
      params: {
        backbone: d.counts.backbone,
        dsd: d.counts.dsd,
        total: d.counts.backbone + d.counts.dsd,
      },
      overheadPercent: Number(d.overheadPercent.toFixed(6)),
      layers: d.layers,
    })
    return 0
  }
  const title = c.backbone === 'dynunet' ? 'SelfDistilDynUNet' : 'SelfDistilUNETR'
  const lines = [
    `${title} (preset ${c.preset}): ${c.inChannels} in, ${c.numClasses} classes, patch ${c.patch.join('×')}` +
      (c.filters ? `, filters ${c.filters.join('-')}` : '') +
      (c.featureSize
        ? `, F ${c.featureSize}, ViT ${c.hidden}/${c.layers} layers/${c.heads} heads/${c.mlp}`
        : ''),
    '',
  ]
  const header = ['block', 'type', 'in → out', 'grid', 'params', 'note']
  const rows = d.layers.map((r) => [
    r.name,
    r.type,
    `${r.inChannels} → ${r.outChannels}`,
    r.outScale === 1 ? 'full' : `1/${r.outScale}`,
    fmt(r.params),
    r.note ?? '',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) =>
    r
      .map((cell, i) => (i === 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  lines.push(line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '')
  lines.push(
    `backbone ${fmt(d.counts.backbone)} parameters; DSD modules ${fmt(d.counts.dsd)} (${d.overheadPercent.toFixed(4)} % overhead); total ${fmt(d.counts.backbone + d.counts.dsd)}`,
  )
  console.log(lines.join('\n'))
  return 0
}
