/**
 * Export commands: `export.start` queues an `export` job (main/services/export-job.ts) that
 * writes chosen prediction sets' masks (NIfTI on the source grid, DICOM SEG where the source is
 * a DICOM series), their metrics CSV and the HTML report into one new folder under the
 * workspace's `exports/`; `export.open` shows such a folder in the system file manager (in
 * Electron). Spread into `commands` in ./index.ts.
 *
 * The renderer never sends a path: the folder is `exports/<name>` with `name` a safe id
 * (./ids.ts), and `export.open` takes that name again.
 */
import { z } from 'zod'
import { SafeId } from './ids'
import { JobInfo } from './jobs'
import { PredictionSetRef } from './review'

/** What can be exported. */
export const ExportFormat = z.enum(['nifti', 'dicom-seg', 'metrics', 'report'])
export type ExportFormat = z.infer<typeof ExportFormat>

export const ExportRequest = z
  .object({
    /** The prediction sets (a run's `predictions/<set>`, or an ensemble), 1–50. */
    sets: z.array(PredictionSetRef).min(1).max(50),
    /** Keep only the sets of these folds (default: every chosen set). */
    folds: z.array(z.number().int().min(0).max(99)).max(100).optional(),
    /** Only these cases (default: every predicted case of each set). */
    cases: z.array(z.string().min(1).max(256)).max(100_000).optional(),
    formats: z.array(ExportFormat).min(1).max(4),
    /** Mask values: class indices 0..K−1, or the values the dataset's label files store. */
    values: z.enum(['classes', 'source']).default('classes'),
    /** Grid of the metrics (and of the report's tables). */
    grid: z.enum(['original', 'preprocessed']).default('original'),
    /** The folder under `exports/` (default: made from the first set and the time). */
    name: SafeId.optional(),
    title: z.string().max(200).optional(),
  })
  .strict()
export type ExportRequest = z.input<typeof ExportRequest>
export type ExportParams = z.output<typeof ExportRequest>

/** The job's result: where the files went and what could not be written. */
export const ExportResult = z.object({
  /** The folder's name under `exports/` (what `export.open` takes). */
  name: z.string(),
  /** Absolute path of the folder. */
  folder: z.string(),
  /** Files written, relative to the folder ('/' separated). */
  files: z.array(z.string()),
  sets: z.array(
    z.object({ key: z.string(), title: z.string(), folder: z.string(), cases: z.number().int() }),
  ),
  /** A format that could not be written for a case, with the reason (e.g. DICOM SEG of a NIfTI source). */
  unavailable: z.array(
    z.object({ set: z.string(), caseId: z.string(), format: z.string(), reason: z.string() }),
  ),
})
export type ExportResult = z.infer<typeof ExportResult>

export const exportCommands = {
  /** Queue an export job; progress (file k of n) arrives as `job.progress`, the result with `job.state`. */
  'export.start': {
    request: ExportRequest,
    response: z.object({ job: JobInfo }),
  },
  /** Open `exports/<name>` in the system file manager (Electron); elsewhere answers the path only. */
  'export.open': {
    request: z.object({ name: SafeId }).strict(),
    response: z.object({ opened: z.boolean(), folder: z.string(), reason: z.string().optional() }),
  },
} as const
