/**
 * The job system with small kinds defined here (real JobKinds, run in-process): the device
 * queue runs one job at a time and io jobs at once; cancel reaches queued and running jobs;
 * pause and continue go through the control word; progress is rate-limited without losing the
 * last value; a throwing kind ends failed with its error; and the stored list brings back ended
 * jobs and re-queues restartable ones after a restart.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { JobInfo, JobProgress } from '../../../main/contract'
import { DsdError } from '../../../main/errors'
import { JobSystem, type JobContext, type JobKind, type JobStore, type StoredJob } from '../../../main/jobs/system'
import { throttle } from '../../../main/jobs/throttle'
import { CONTROL } from '../../../main/workers/protocol'

const tick = () => new Promise((r) => setTimeout(r, 5))

/** A kind whose jobs wait until `release(name)` (or a cancel), logging when they start and end. */
function gatedKind(queue: 'device' | 'io', log: string[], options: Partial<JobKind> = {}) {
  const gates = new Map<string, () => void>()
  const kind: JobKind<{ name: string }, string> = {
    name: queue === 'device' ? 'train' : 'datasets.import',
    params: z.object({ name: z.string() }),
    queue,
    label: (p) => `job ${p.name}`,
    subject: (p) => p.name,
    ...(options as object),
    run: async ({ name }, ctx) => {
      log.push(`start ${name}`)
      await new Promise<void>((resolve, reject) => {
        gates.set(name, resolve)
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))
      })
      log.push(`end ${name}`)
      return `result of ${name}`
    },
  }
  const release = async (name: string) => {
    while (!gates.has(name)) await tick()
    gates.get(name)!()
  }
  return { kind, release }
}

/** A store that keeps the list in memory (what main/workspace/jobs.ts keeps in jobs.json). */
function memoryStore(): JobStore & { jobs: StoredJob[] } {
  return {
    jobs: [],
    async load() {
      return structuredClone(this.jobs)
    },
    async save(jobs) {
      this.jobs = structuredClone(jobs)
    },
  }
}

describe('the job system', () => {
  it('runs device jobs one at a time in order, io jobs at once', async () => {
    const log: string[] = []
    const device = gatedKind('device', log)
    const io = gatedKind('io', log)
    const jobs = new JobSystem().register(device.kind).register(io.kind)
    const a = jobs.start('train', { name: 'a' })
    const b = jobs.start('train', { name: 'b' })
    const c = jobs.start('datasets.import', { name: 'c' })
    await device.release('a')
    await io.release('c')
    await device.release('b')
    await jobs.idle()
    // b starts only after a has ended; c does not wait for the device queue.
    expect(log.indexOf('start b')).toBeGreaterThan(log.indexOf('end a'))
    expect(log.indexOf('start c')).toBeLessThan(log.indexOf('end a'))
    for (const j of [a, b, c]) {
      expect(await jobs.wait(j.jobId)).toMatchObject({ status: 'completed', result: `result of ${j.subject}` })
    }
    expect(jobs.list().map((j) => j.label)).toEqual(['job a', 'job b', 'job c'])
    expect(jobs.latest('train', 'b')?.jobId).toBe(b.jobId)
  })

  it('cancels a queued job before it runs and a running one through its signal', async () => {
    const log: string[] = []
    const cancelledBefore: string[] = []
    const device = gatedKind('device', log, { cancelledBeforeStart: (p: { name: string }) => void cancelledBefore.push(p.name) } as Partial<JobKind>)
    const jobs = new JobSystem().register(device.kind)
    const a = jobs.start('train', { name: 'a' })
    const b = jobs.start('train', { name: 'b' })
    while (!log.includes('start a')) await tick()
    expect(jobs.control(b.jobId, 'cancel')).toBe(true)
    expect(jobs.control(a.jobId, 'cancel')).toBe(true)
    expect(await jobs.wait(a.jobId)).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } })
    expect(await jobs.wait(b.jobId)).toMatchObject({ status: 'cancelled', message: 'cancelled before it started' })
    expect(cancelledBefore).toEqual(['b'])
    expect(log).toEqual(['start a'])
    expect(jobs.control(a.jobId, 'cancel')).toBe(false)
    expect(jobs.control('no-such-job', 'cancel')).toBe(false)
  })

  it('ends a throwing job failed with its error, and refuses bad parameters and unknown kinds', async () => {
    const kind: JobKind<{ file: string }, never> = {
      name: 'datasets.audit',
      params: z.object({ file: z.string().min(1) }),
      queue: 'io',
      label: (p) => `read ${p.file}`,
      run: async (p) => {
        throw new DsdError('NIFTI_TRUNCATED', `${p.file}: truncated; re-export it`, { file: p.file })
      },
    }
    const jobs = new JobSystem().register(kind)
    const end = await jobs.wait(jobs.start('datasets.audit', { file: 'a.nii' }).jobId)
    expect(end).toMatchObject({ status: 'failed', message: 'a.nii: truncated; re-export it', error: { code: 'NIFTI_TRUNCATED', details: { file: 'a.nii' } } })
    expect(() => jobs.start('datasets.audit', { file: '' })).toThrow(/Invalid parameters for a datasets.audit job: file/)
    expect(() => jobs.start('train', {})).toThrow(/No job kind "train"/)
  })

  it('pauses and continues a pausable job through the control word', async () => {
    const steps: number[] = []
    const kind: JobKind<{ steps: number }, number> = {
      name: 'train',
      params: z.object({ steps: z.number() }),
      queue: 'device',
      pausable: true,
      label: () => 'loop',
      run: async ({ steps: n }, ctx: JobContext) => {
        for (let i = 1; i <= n; i++) {
          if (Atomics.load(ctx.control, 0) === CONTROL.pause) {
            ctx.paused(true, `paused at ${i}`)
            while (Atomics.load(ctx.control, 0) === CONTROL.pause) await tick()
            ctx.paused(false, 'running')
          }
          if (Atomics.load(ctx.control, 0) === CONTROL.cancel) throw new DsdError('CANCELLED', 'cancelled', {})
          steps.push(i)
          ctx.progress(i, n, `step ${i}`)
          await tick()
        }
        return n
      },
    }
    const jobs = new JobSystem().register(kind)
    const states: string[] = []
    jobs.on('state', (s) => states.push(`${s.status}${s.status === 'paused' ? ` (${s.message})` : ''}`))
    const job = jobs.start('train', { steps: 30 })
    while (steps.length < 3) await tick()
    expect(jobs.control(job.jobId, 'pause')).toBe(true)
    while (jobs.get(job.jobId)!.status !== 'paused') await tick()
    const at = steps.length
    await new Promise((r) => setTimeout(r, 50))
    expect(steps.length).toBe(at) // nothing runs while paused
    expect(jobs.control(job.jobId, 'pause')).toBe(false)
    expect(jobs.control(job.jobId, 'continue')).toBe(true)
    expect(await jobs.wait(job.jobId)).toMatchObject({ status: 'completed', result: 30, done: 30, total: 30 })
    expect(steps).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(states).toEqual(['queued', 'running', `paused (paused at ${at + 1})`, 'running', 'completed'])
  })

  it('rate-limits progress events and never loses the last value', async () => {
    const kind: JobKind<Record<string, never>, null> = {
      name: 'datasets.import',
      params: z.object({}),
      queue: 'io',
      label: () => 'burst',
      run: async (_p, ctx) => {
        for (let i = 1; i <= 1000; i++) ctx.progress(i, 1000)
        await new Promise((r) => setTimeout(r, 120))
        ctx.progress(1000, 1000, 'last')
        await new Promise((r) => setTimeout(r, 120))
        return null
      },
    }
    const jobs = new JobSystem({ progressIntervalMs: 100 }).register(kind)
    const events: JobProgress[] = []
    jobs.on('progress', (p) => events.push(p))
    await jobs.wait(jobs.start('datasets.import', {}).jobId)
    expect(events.length).toBeGreaterThanOrEqual(2)
    expect(events.length).toBeLessThanOrEqual(4)
    expect(events[0].done).toBe(1)
    expect(events.some((e) => e.done === 1000 && e.message === '')).toBe(true)
    expect(events.at(-1)).toMatchObject({ done: 1000, message: 'last' })
  })

  it('throttle sends the held value after the interval, or at once when forced', async () => {
    const sent: number[] = []
    const t = throttle<number>(50, (v) => sent.push(v))
    t.push(1)
    t.push(2)
    t.push(3)
    expect(sent).toEqual([1])
    await new Promise((r) => setTimeout(r, 80))
    expect(sent).toEqual([1, 3])
    t.push(4)
    t.push(5, true)
    expect(sent).toEqual([1, 3, 5])
    t.push(6)
    t.cancel()
    await new Promise((r) => setTimeout(r, 80))
    expect(sent).toEqual([1, 3, 5])
  })

  it('keeps the list in its store: ended jobs come back, restartable ones run again', async () => {
    const store = memoryStore()
    const log: string[] = []
    const device = gatedKind('device', log, { restartable: true } as Partial<JobKind>)
    const io = gatedKind('io', log)
    const first = new JobSystem({ store }).register(device.kind).register(io.kind)
    await first.restore()
    const done = first.start('datasets.import', { name: 'done' })
    await io.release('done')
    await first.wait(done.jobId)
    const stopped = first.start('datasets.import', { name: 'stopped' })
    const a = first.start('train', { name: 'a' })
    const b = first.start('train', { name: 'b' })
    while (!log.includes('start a') || !log.includes('start stopped')) await tick()
    await first.close(1000)
    const saved = new Map(store.jobs.map((j) => [j.info.jobId, j.info]))
    expect(saved.get(a.jobId)).toMatchObject({ status: 'queued', message: 'stopped when the app closed; continues when it starts again' })
    expect(saved.get(b.jobId)).toMatchObject({ status: 'queued', message: 'queued; runs when the app starts again' })
    expect(saved.get(stopped.jobId)?.status).toBe('cancelled')
    expect(() => first.start('train', { name: 'late' })).toThrow(/closing/)

    // As if the app had died while these ran: a running job of a kind that cannot restart fails.
    store.jobs.push({
      info: { ...saved.get(done.jobId)!, jobId: 'crashed', status: 'running', endedAt: null },
      params: { name: 'crashed' },
    })
    const log2: string[] = []
    const device2 = gatedKind('device', log2, { restartable: true } as Partial<JobKind>)
    const second = new JobSystem({ store }).register(device2.kind).register(gatedKind('io', log2).kind)
    await second.restore()
    const listed = new Map(second.list().map((j) => [j.jobId, j] as [string, JobInfo]))
    expect(listed.get(done.jobId)?.status).toBe('completed')
    expect(listed.get('crashed')).toMatchObject({ status: 'failed', error: { code: 'INTERRUPTED' } })
    await device2.release('a')
    await device2.release('b')
    expect(await second.wait(a.jobId)).toMatchObject({ status: 'completed', result: 'result of a' })
    expect(await second.wait(b.jobId)).toMatchObject({ status: 'completed', result: 'result of b' })
    expect(log2).toEqual(['start a', 'end a', 'start b', 'end b'])
    await second.close()
    expect(store.jobs.every((j) => ['completed', 'failed', 'cancelled'].includes(j.info.status))).toBe(true)
  })
})
