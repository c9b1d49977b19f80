import { describe, expect, it } from 'vitest'
import { commands, events } from '../../../main/contract'
import { Bridge, type Handlers } from '../../../main/services/bridge'
import { createApp } from '../../../main/services/app'
import { DsdError } from '../../../main/errors'
import { tmpDir } from '../../helpers/shared'

describe('contract schemas', () => {
  it('validate requests and apply defaults', () => {
    const ok = commands['datasets.import'].request.parse({ path: '/data/x' })
    expect(ok).toEqual({ path: '/data/x', layout: 'auto' })
    expect(commands['datasets.import'].request.safeParse({ path: '' }).success).toBe(false)
    expect(commands['datasets.import'].request.safeParse({ path: '/x', layout: 'zip' }).success).toBe(false)
    // Unknown keys are refused rather than silently dropped.
    expect(commands['app.ping'].request.safeParse({ message: 'x', extra: 1 }).success).toBe(false)
    expect(commands['splits.create'].request.safeParse({ datasetId: '../etc', folds: 5 }).success).toBe(false)
  })

  it('validate event payloads', () => {
    expect(events['job.progress'].safeParse({ jobId: 't', kind: 'train', done: 1, total: 2, message: '' }).success).toBe(true)
    expect(events['job.progress'].safeParse({ jobId: 't', kind: 'no-such-kind', done: 1, total: 2, message: '' }).success).toBe(false)
    expect(events['job.progress'].safeParse({ jobId: 't', done: 1 }).success).toBe(false)
  })
})

describe('Bridge', () => {
  const app = () => createApp({ workspace: tmpDir('bridge'), transport: 'in-process', validateResponses: true })

  it('answers a valid command with { ok: true, value }', async () => {
    const r = await app().bridge.invoke('app.ping', { message: 'hello' })
    expect(r.ok).toBe(true)
    expect(r.ok && (r.value as { message: string }).message).toBe('hello')
  })

  it('refuses unknown commands and invalid payloads with the error shape', async () => {
    const b = app().bridge
    const unknown = await b.invoke('fs.read', {})
    expect(unknown).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } })
    const proto = await b.invoke('__proto__', {})
    expect(proto).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } })
    const invalid = await b.invoke('app.ping', { message: 42 })
    expect(invalid.ok).toBe(false)
    if (!invalid.ok) {
      expect(invalid.error.code).toBe('VALIDATION')
      expect(invalid.error.message).toMatch(/app\.ping.*message/)
      expect(Object.keys(invalid.error).sort()).toEqual(['code', 'details', 'message'])
    }
  })

  it('turns handler errors into { code, message, details } and catches contract drift', async () => {
    const handlers = {
      'app.ping': async () => {
        throw new DsdError('NOPE', 'file x: broken; fix it', { file: 'x' })
      },
      'app.info': async () => ({ wrong: true }),
    } as unknown as Handlers
    const b = new Bridge(handlers, { validateResponses: true })
    expect(await b.invoke('app.ping', { message: 'x' })).toEqual({
      ok: false,
      error: { code: 'NOPE', message: 'file x: broken; fix it', details: { file: 'x' } },
    })
    expect(await b.invoke('app.info', {})).toMatchObject({ ok: false, error: { code: 'BAD_RESPONSE' } })
  })

  it('pushes events to subscribers through the typed in-process API', async () => {
    const a = app()
    const api = a.bridge.api()
    const got = new Promise<string>((resolve) => api.on('app.pong', (p) => resolve(p.message)))
    const res = await api.invoke('app.ping', { message: 'round trip' })
    expect(res.message).toBe('round trip')
    expect(await got).toBe('round trip')
    await expect(api.invoke('app.ping', { message: 1 as unknown as string })).rejects.toMatchObject({ code: 'VALIDATION' })
  })

  it('refuses to emit an event that breaks its schema', () => {
    const b = new Bridge({} as Handlers)
    expect(() => b.emit('job.progress', { jobId: 1 } as never)).toThrow()
  })
})
