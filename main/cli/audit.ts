import { existsSync, statSync } from 'node:fs'
import { auditDataset } from '../data/audit'
import { parseLayout } from '../data/layouts'
import { DatasetService } from '../services/datasets'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, parse, printJson } from './args'
import { stderrProgress } from './import'

export const summary =
  'Dataset doctor: check labels, geometry, channels and intensities of a dataset'
export const usage = `Usage: dsd audit <dataset-id | folder> [--workspace DIR] [--json] [--all] [--quiet]

Checks every case: label values found vs declared, image/label geometry (shape, spacing,
origin, direction), missing or extra channels, empty labels, NaN/Inf, label files stored as
floats, intensity ranges that are outliers between cases, and notes non-RAS, oblique or
anisotropic geometry. Prints a summary with one line per problem and its fix (--all lists
every finding). For an imported dataset the report is saved as datasets/<id>/audit.json; a
folder path is audited in place without importing it.

Exit code: 0 without errors (warnings allowed), 1 when errors were found.`

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    workspace: { type: 'string' },
    json: { type: 'boolean' },
    all: { type: 'boolean' },
    quiet: { type: 'boolean' },
  })
  const target = positionals[0]
  if (!target || positionals.length > 1)
    throw new CliError('give one dataset ID or folder (see --help)')
  const onProgress = stderrProgress('audit', values.quiet || values.json)
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  try {
    let report
    if (existsSync(target) && statSync(target).isDirectory()) {
      const l = parseLayout(target)
      report = await auditDataset(
        {
          datasetId: l.name,
          cases: l.cases,
          channels: l.channels,
          labels: l.labels,
          known: l.problems,
        },
        { onProgress, signal: controller.signal },
      )
    } else {
      report = await new DatasetService(workspaceRoot(values.workspace)).auditDataset(target, {
        onProgress,
        signal: controller.signal,
      })
    }
    if (values.json) printJson(report)
    else {
      const c = report.counts
      console.log(
        `${report.datasetId}: ${report.cases} case(s) audited in ${(report.ms / 1000).toFixed(1)} s — ${c.error} error(s), ${c.warning} warning(s), ${c.info} note(s)`,
      )
      for (const line of report.summary) console.log(`  ${line}`)
      if (values.all)
        for (const f of report.findings)
          console.log(`  [${f.severity}] ${f.caseId ?? '-'} ${f.code}: ${f.message}`)
    }
    return report.counts.error ? 1 : 0
  } finally {
    process.off('SIGINT', onSigint)
  }
}
