/**
 * A run = dataset + split + fold + model + DSD variant + optimisation settings + seed +
 * backend. Runs are self-describing folders in the workspace, so `dsd train` can run headless
 * on a server and the folder be copied back:
 *
 *   runs/<runId>/
 *     config.json          RunConfig (main/contract/runs.ts: what was asked)
 *     manifest.json        RunManifest (app/library versions, backend and device, seeds,
 *                          dataset and split hashes, the resolved config)
 *     state.json           RunState (main/contract/runs.ts: queued | running | paused | completed | failed | cancelled)
 *     log.jsonl            one EpochLog (main/contract/runs.ts) per line, rewritten atomically every epoch
 *     timing.jsonl         one EpochTiming per line (wall clock; not part of the log)
 *     checkpoints/last.ckpt  engine checkpoint (main/engine/checkpoint.ts format) (weights, optimizer, schedule, RNG, epoch)
 *     checkpoints/best.ckpt  the epoch with the best mean validation Dice
 *     predictions/<fold-or-name>/<caseId>.nii.gz   masks on the original image grid
 *     metrics/<name>.csv|json                       per-case metrics
 *     report.html
 */
import { join } from 'node:path'

/** Wall-clock figures of one epoch (timing.jsonl; kept out of log.jsonl, which is deterministic). */
export interface EpochTiming {
  epoch: number
  seconds: number
  voxelsPerSecond: number
  backend: string
}

export const runDir = (workspace: string, runId: string) => join(workspace, 'runs', runId)
export const runFiles = (workspace: string, runId: string) => {
  const dir = runDir(workspace, runId)
  return {
    dir,
    config: join(dir, 'config.json'),
    manifest: join(dir, 'manifest.json'),
    state: join(dir, 'state.json'),
    log: join(dir, 'log.jsonl'),
    timing: join(dir, 'timing.jsonl'),
    lastCheckpoint: join(dir, 'checkpoints', 'last.ckpt'),
    bestCheckpoint: join(dir, 'checkpoints', 'best.ckpt'),
    predictions: join(dir, 'predictions'),
    metrics: join(dir, 'metrics'),
    report: join(dir, 'report.html'),
  }
}
