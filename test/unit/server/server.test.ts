import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startServer, type RunningServer } from '../../../main/server'
import { resolveInside } from '../../../main/safe-path'
import { tmpDir } from '../../helpers/shared'

/** Raw HTTP (fetch forbids setting Host/Origin freely). */
function http(
  server: RunningServer,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, path, method: opts.method ?? 'GET', headers: opts.headers },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

describe('browser-mode server', () => {
  let server: RunningServer
  let staticDir: string
  let workspace: string

  beforeAll(async () => {
    staticDir = tmpDir('static')
    workspace = tmpDir('ws')
    mkdirSync(join(staticDir, 'assets'), { recursive: true })
    mkdirSync(join(workspace, 'datasets'), { recursive: true })
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>DSD Studio</title>')
    writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)')
    writeFileSync(join(workspace, 'datasets', 'vol.bin'), Buffer.from([1, 2, 3]))
    writeFileSync(join(workspace, 'datasets', 'evil.html'), '<script>fetch("/api/invoke/runs.list")</script>')
    writeFileSync(join(workspace, 'datasets', 'evil.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    writeFileSync(join(staticDir, '..', 'secret.txt'), 'secret')
    symlinkSync(join(staticDir, '..', 'secret.txt'), join(staticDir, 'assets', 'link.txt'))
    server = await startServer({ port: 0, staticDir, workspace })
  })
  afterAll(async () => server?.close())

  it('prints a loopback URL that carries the token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`)
    expect(server.token.length).toBeGreaterThanOrEqual(32)
  })

  it('answers 401 without the token, for pages, assets, API and data', async () => {
    for (const path of ['/', '/assets/app.js', '/data/datasets/vol.bin']) {
      expect((await http(server, path)).status).toBe(401)
    }
    const api = await http(server, '/api/invoke/app.ping', { method: 'POST', body: '{"message":"x"}' })
    expect(api.status).toBe(401)
    const wrong = await http(server, '/?token=' + 'x'.repeat(server.token.length))
    expect(wrong.status).toBe(401)
  })

  it('serves the app with the token, sets the cookie and a strict CSP', async () => {
    const res = await http(server, `/?token=${server.token}`)
    expect(res.status).toBe(200)
    expect(res.body).toContain('DSD Studio')
    expect(String(res.headers['set-cookie'])).toMatch(/dsd_token=.*HttpOnly.*SameSite=Strict/)
    expect(String(res.headers['content-security-policy'])).toContain("default-src 'self'")
    const asset = await http(server, '/assets/app.js', { headers: { cookie: `dsd_token=${server.token}` } })
    expect(asset.status).toBe(200)
    expect(asset.headers['content-type']).toMatch(/javascript/)
  })

  it('runs commands over HTTP with the header token and returns the contract Result', async () => {
    const res = await http(server, '/api/invoke/app.ping', {
      method: 'POST',
      headers: { 'x-dsd-token': server.token, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'over http' }),
    })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ ok: true, value: { message: 'over http' } })
    const bad = await http(server, '/api/invoke/app.ping', {
      method: 'POST',
      headers: { 'x-dsd-token': server.token },
      body: '{not json',
    })
    expect(JSON.parse(bad.body)).toMatchObject({ ok: false, error: { code: 'BAD_JSON' } })
  })

  it('refuses foreign origins and hosts even with the token', async () => {
    const evil = await http(server, '/api/invoke/app.ping', {
      method: 'POST',
      headers: { 'x-dsd-token': server.token, origin: 'http://evil.example' },
      body: '{"message":"x"}',
    })
    expect(evil.status).toBe(403)
    const rebinding = await http(server, `/?token=${server.token}`, { headers: { host: 'evil.example:80' } })
    expect(rebinding.status).toBe(403)
  })

  it('never serves files outside its folders', async () => {
    const h = { cookie: `dsd_token=${server.token}` }
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/assets/link.txt', '/data/..%2f..%2fsecret.txt']) {
      const res = await http(server, path, { headers: h })
      expect(res.body).not.toContain('secret')
      expect([400, 404]).toContain(res.status)
    }
    const data = await http(server, '/data/datasets/vol.bin', { headers: h })
    expect(data.status).toBe(200)
  })

  it('serves workspace files as downloads that can never run on the app origin', async () => {
    const h = { cookie: `dsd_token=${server.token}` }
    for (const name of ['evil.html', 'evil.svg', 'vol.bin']) {
      const res = await http(server, `/data/datasets/${name}`, { headers: h })
      expect(res.status).toBe(200)
      expect(res.headers['content-type']).toBe('application/octet-stream')
      expect(res.headers['content-disposition']).toBe(`attachment; filename="${name}"`)
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      const policy = String(res.headers['content-security-policy'])
      expect(policy).toContain("default-src 'none'")
      expect(policy).toContain('sandbox')
      expect(policy).toContain("frame-ancestors 'none'")
    }
    const head = await http(server, '/data/datasets/vol.bin', { method: 'HEAD', headers: h })
    expect(head.status).toBe(200)
    expect(head.headers['content-length']).toBe('3')
    expect(head.body).toBe('')
  })

  it('accepts the query token on page loads only, never for API, data, assets or sockets', async () => {
    const q = `?token=${server.token}`
    expect((await http(server, `/${q}`)).status).toBe(200)
    expect((await http(server, `/training${q}`)).status).toBe(200) // a history-mode route
    expect((await http(server, `/assets/app.js${q}`)).status).toBe(401)
    expect((await http(server, `/data/datasets/vol.bin${q}`)).status).toBe(401)
    const api = await http(server, `/api/invoke/app.ping${q}`, { method: 'POST', body: '{"message":"x"}' })
    expect(api.status).toBe(401)
    const ws = await new Promise<number>((resolve) => {
      const s = new WebSocket(`ws://127.0.0.1:${server.port}/api/events${q}`)
      s.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      s.on('open', () => resolve(101))
      s.on('error', () => undefined)
    })
    expect(ws).toBe(401)
  })

  it('refuses run ids "." and ".." (they never reach the file system)', async () => {
    for (const runId of ['.', '..']) {
      const res = await http(server, '/api/invoke/runs.get', {
        method: 'POST',
        headers: { 'x-dsd-token': server.token },
        body: JSON.stringify({ runId }),
      })
      expect(JSON.parse(res.body)).toMatchObject({ ok: false, error: { code: 'VALIDATION' } })
    }
  })

  it('pushes events over the WebSocket, and refuses sockets without the token', async () => {
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`)
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('open', () => resolve(200))
      ws.on('error', () => undefined)
    })
    expect(refused).toBe(401)

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, [`dsd.token.${server.token}`])
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const event = new Promise<{ event: string; payload: { message: string } }>((resolve) =>
      ws.on('message', (data) => resolve(JSON.parse(String(data)))),
    )
    await http(server, '/api/invoke/app.ping', {
      method: 'POST',
      headers: { 'x-dsd-token': server.token },
      body: JSON.stringify({ message: 'pushed' }),
    })
    expect(await event).toEqual({ event: 'app.pong', payload: { message: 'pushed' } })
    expect(ws.protocol).toBe(`dsd.token.${server.token}`)
    ws.close()
    // the cookie set on the first page load opens the socket too (what a browser sends)
    const viaCookie = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, {
      headers: { cookie: `dsd_token=${server.token}` },
    })
    await new Promise((resolve, reject) => {
      viaCookie.once('open', resolve)
      viaCookie.once('error', reject)
    })
    viaCookie.close()
  })
})

describe('resolveInside', () => {
  it('keeps paths inside the root', () => {
    expect(resolveInside('/srv/app', 'assets/a.js')).toBe('/srv/app/assets/a.js')
    for (const bad of ['../x', 'a/../../x', '%2e%2e/x', 'a%2fb', 'a\\..\\b', 'a\0b', '..']) {
      expect(() => resolveInside('/srv/app', bad)).toThrow(/not allowed|leaves|Malformed/)
    }
  })
})
