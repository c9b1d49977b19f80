import { DatasetService, splitSummary } from '../services/datasets'
import { workspaceRoot } from '../services/workspace-root'
import { CliError, intOption, parse, printJson } from './args'

export const summary =
  'Create, list or check cross-validation splits (k-fold, MMWHS and BraTS presets)'
export const usage = `Usage:
  dsd split <dataset> [--folds K] [--seed S] [--preset mmwhs|brats] [--name NAME]
                      [--test ID,ID,…] [--workspace DIR] [--json]
  dsd split <dataset> --list [--json]
  dsd split <dataset> --check NAME [--json]

Seeded k-fold (default 5 folds, seed 0): units are patients when the dataset groups cases by
patient (dataset.json "patients"), else cases; they are sorted, shuffled with Python's
random.Random(seed).shuffle and dealt to the smallest fold. Presets reproduce the paper:
  mmwhs  sorted by file name, 4 consecutive volumes per validation fold (20 → 5 folds)
  brats  sorted; last 24 = test; the other cases shuffled with random.Random(0); last 72 = val
The split is saved as datasets/<id>/splits/<name>.json with a sha256 of its partition. You may
edit it by hand; --check validates it (every case once, no train/val/test leakage, patients
not split) and re-stamps the hash.`

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    folds: { type: 'string' },
    seed: { type: 'string' },
    preset: { type: 'string' },
    name: { type: 'string' },
    test: { type: 'string' },
    list: { type: 'boolean' },
    check: { type: 'string' },
    workspace: { type: 'string' },
    json: { type: 'boolean' },
  })
  const id = positionals[0]
  if (!id || positionals.length > 1)
    throw new CliError('give one dataset ID (see `dsd import --list`)')
  const svc = new DatasetService(workspaceRoot(values.workspace))
  if (values.list) {
    const splits = await svc.listSplits(id)
    if (values.json) printJson({ splits })
    else if (!splits.length)
      console.log(`${id}: no splits yet; create one with \`dsd split ${id} --folds 5 --seed 0\``)
    else
      for (const s of splits)
        console.log(
          `${s.name.padEnd(24)} ${s.folds} fold(s)  seed ${s.seed}  ${s.preset ?? 'kfold/custom'}  ${s.hash}`,
        )
    return 0
  }
  if (values.check) {
    const r = await svc.getSplit(id, values.check)
    if (values.json)
      printJson({ ...splitSummary(r.split), edited: r.edited, problems: r.problems, file: r.file })
    else {
      console.log(
        `${r.file}: valid${r.edited ? ` (edited by hand: the file says ${r.storedHash}; nothing was rewritten)` : ''} — ${r.split.folds.length} fold(s), ${r.split.test.length} test case(s), ${r.split.hash}`,
      )
      for (const p of r.problems) console.log(`  ${p.severity.toUpperCase()} ${p.message}`)
    }
    return 0
  }
  const preset = values.preset
  if (preset !== undefined && preset !== 'mmwhs' && preset !== 'brats')
    throw new CliError(`--preset must be mmwhs or brats, got "${preset}"`)
  if (preset && values.folds)
    throw new CliError(
      '--folds does not apply to a preset (mmwhs: 4 cases per fold; brats: one fold)',
    )
  const split = await svc.createSplit(id, {
    folds: intOption('folds', values.folds, 5),
    seed: intOption('seed', values.seed, 0),
    preset,
    name: values.name,
    test: values.test
      ? values.test
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined,
  })
  if (values.json) printJson(split)
  else {
    console.log(
      `${id}: split "${split.name}" (${split.method}${split.seed !== null ? `, seed ${split.seed}` : ''}) saved — ${split.hash}`,
    )
    split.folds.forEach((f, i) =>
      console.log(`  fold ${i}: ${f.train.length} train, ${f.val.length} val`),
    )
    if (split.test.length) console.log(`  test: ${split.test.length}`)
  }
  return 0
}
