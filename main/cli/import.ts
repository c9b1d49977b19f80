import { existsSync, readFileSync, statSync } from 'node:fs'
import {
  detectLayout,
  parsePairRule,
  proposePairRules,
  formatPairRule,
  type LayoutKind,
} from '../data/layouts'
import type { LabelMap } from '../data/labels'
import { DatasetService } from '../services/datasets'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, parse, printJson } from './args'

export const summary =
  'Import a dataset folder (MSD, nnU-Net raw, image/label pairs) into the workspace'
export const usage = `Usage:
  dsd import <folder> [--layout auto|msd|nnunet|pairs] [--name NAME] [--rule RULE | --yes]
                      [--labels PRESET|FILE.json] [--workspace DIR] [--json] [--quiet]
  dsd import --list [--workspace DIR] [--json]
  dsd import --dataset ID --labels PRESET|FILE.json [--workspace DIR] [--json]

Records every case's files (paths, byte sizes, sha256), header geometry and label values in
datasets/<id>/manifest.json. The source folder is never modified. Cases with problems (missing
files, unreadable headers, label grid ≠ image grid) are skipped and reported; the rest import.

  --layout   auto (default) detects: dataset.json with "channel_names" or <case>_0000 files →
             nnunet; dataset.json → msd; otherwise pairs.
  --rule     pairs only: "images/{id}.nii.gz=labels/{id}.nii.gz" (image template = label
             template). Without --rule the proposed rule is printed for you to confirm;
             --yes accepts it.
  --labels   label map: a preset ("mmwhs": 205…850 → 1…7, 421 → 0) or a JSON file
             {"classes": {"0": "background", …}, "remap": {"205": 1, …}}.
  --dataset  change the label map of an imported dataset.
  --workspace DIR  (default: $DSD_WORKSPACE, else the per-user data folder)

Progress goes to stderr, the result to stdout. Exit code 0 on success, 1 when nothing could be
imported, 3 when a pairs rule needs confirming.`

/** Progress on stderr: a redrawn line on a terminal, else a line every ~10 %. */
export function stderrProgress(
  label: string,
  quiet = false,
): (done: number, total: number, item: string) => void {
  let lastPct = -1
  const tty = process.stderr.isTTY
  return (done, total, item) => {
    if (quiet) return
    const pct = total ? Math.floor((done / total) * 100) : 100
    if (tty) {
      process.stderr.write(
        `\r${`${label} ${done}/${total} (${pct}%) ${item}`.padEnd(72).slice(0, 100)}`,
      )
      if (done === total) process.stderr.write('\n')
    } else if (Math.floor(pct / 10) !== Math.floor(lastPct / 10) || done === total) {
      process.stderr.write(`${label} ${done}/${total} (${pct}%)\n`)
    }
    lastPct = pct
  }
}

/** Read a --labels value: preset name or JSON file. */
export function labelMapArg(v: string): LabelMap | string {
  if (existsSync(v) && statSync(v).isFile()) {
    try {
      return JSON.parse(readFileSync(v, 'utf8')) as LabelMap
    } catch (e) {
      throw new CliError(
        `${v}: not valid JSON (${(e as Error).message}); expected {"classes": {…}, "remap": {…}}`,
      )
    }
  }
  return v
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    layout: { type: 'string' },
    name: { type: 'string' },
    rule: { type: 'string' },
    yes: { type: 'boolean' },
    labels: { type: 'string' },
    dataset: { type: 'string' },
    list: { type: 'boolean' },
    workspace: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
  })
  const svc = new DatasetService(workspaceRoot(values.workspace))
  if (values.list) {
    const { datasets, broken } = await svc.listDatasets()
    if (values.json) printJson({ datasets, broken })
    else {
      if (!datasets.length && !broken.length) console.log(`no datasets in ${svc.workspace}`)
      for (const d of datasets)
        console.log(
          `${d.id.padEnd(32)} ${String(d.cases).padStart(5)} cases  ${d.layout.padEnd(6)} ${d.source}`,
        )
      for (const b of broken) console.log(`${b.id.padEnd(32)} DAMAGED: ${b.message}`)
    }
    return broken.length ? 1 : 0
  }
  if (values.dataset) {
    if (!values.labels) throw new CliError('--dataset needs --labels PRESET|FILE.json')
    const { manifest, problems } = await svc.setLabelMap(values.dataset, labelMapArg(values.labels))
    if (values.json) printJson({ datasetId: manifest.id, labelMap: manifest.labelMap, problems })
    else {
      console.log(
        `${manifest.id}: label map set (${Object.keys(manifest.labelMap.classes).length} classes)`,
      )
      for (const p of problems) console.log(`  ${p.severity.toUpperCase()} ${p.code} ${p.message}`)
    }
    return 0
  }
  const path = positionals[0]
  if (!path || positionals.length > 1)
    throw new CliError('give one dataset folder to import (see --help)')
  const layoutOpt = (values.layout ?? 'auto') as LayoutKind | 'auto'
  if (!['auto', 'msd', 'nnunet', 'pairs'].includes(layoutOpt))
    throw new CliError(`--layout must be auto, msd, nnunet or pairs, got "${values.layout}"`)
  const layout = layoutOpt === 'auto' ? detectLayout(path) : layoutOpt
  let rule = values.rule ? parsePairRule(values.rule) : undefined
  if (layout === 'pairs' && !rule) {
    const proposals = proposePairRules(path)
    if (!proposals.length)
      throw new CliError(
        `${path}: no image/label pairs found; give a rule with --rule "images/{id}.nii.gz=labels/{id}.nii.gz"`,
        1,
      )
    if (!values.yes) {
      const lines = [`${path}: pairs layout. Proposed naming rule(s):`]
      for (const p of proposals.slice(0, 5)) {
        lines.push(
          `  --rule "${formatPairRule(p.rule)}"   ${p.pairs} pairs, ${p.unmatchedImages} images and ${p.unmatchedLabels} labels unmatched`,
        )
      }
      lines.push('Confirm by re-running with one of these --rule options (or --yes for the first).')
      console.error(lines.join('\n'))
      if (values.json) printJson({ confirm: true, proposals })
      return 3
    }
    rule = proposals[0].rule
  }
  const r = await svc.importDataset(path, {
    layout,
    name: values.name,
    rule,
    labelMap: undefined,
    onProgress: stderrProgress('import', values.quiet || values.json),
  })
  let manifest = r.manifest
  let problems = r.problems
  if (values.labels) {
    const s = await svc.setLabelMap(manifest.id, labelMapArg(values.labels))
    manifest = s.manifest
    problems = manifest.problems
  }
  if (values.json) {
    printJson({
      datasetId: manifest.id,
      name: manifest.name,
      layout: manifest.layout,
      imported: r.imported,
      skipped: r.skipped,
      channels: manifest.channels,
      labelMap: manifest.labelMap,
      rule: manifest.rule,
      problems,
    })
  } else {
    console.log(
      `imported ${r.imported} case(s) as "${manifest.id}" (${manifest.layout}${manifest.rule ? `, rule ${manifest.rule}` : ''}); ${r.skipped} skipped`,
    )
    console.log(
      `channels: ${manifest.channels.join(', ')}; classes: ${Object.entries(
        manifest.labelMap.classes,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    )
    for (const p of problems) console.log(`  ${p.severity.toUpperCase()} ${p.code} ${p.message}`)
    console.log(`next: dsd audit ${manifest.id}`)
  }
  return 0
}
