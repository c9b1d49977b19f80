// `dsd serve` as a user starts it: serves the built app with the session token, and a busy port
// gets a message that names the port and how to choose another.
import { spawn, spawnSync } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT, tmpDir } from '../../helpers/shared'

const dsd = join(ROOT, 'bin/dsd.mjs')

describe('dsd serve', () => {
  let blocker: Server | undefined
  afterAll(() => blocker?.close())

  it('names the busy port and the --port option', async () => {
    blocker = createServer()
    const port = await new Promise<number>((r) => blocker!.listen(0, '127.0.0.1', () => r((blocker!.address() as { port: number }).port)))
    const r = spawnSync(process.execPath, [dsd, 'serve', '--port', String(port), '--workspace', tmpDir('serve-busy')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`)
    expect(r.stderr).toContain('--port N')
  })

  it('serves the app with its token (HTTP 200) and refuses without it (401)', async () => {
    const child = spawn(process.execPath, [dsd, 'serve', '--port', '0', '--workspace', tmpDir('serve-ok')], { cwd: ROOT })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (d) => {
          out += d
          const m = /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)
          if (m) resolve(m[0])
        })
        child.on('exit', (code) => reject(new Error(`dsd serve exited (${code}): ${out}`)))
      })
      const ok = await fetch(url)
      expect(ok.status).toBe(200)
      expect(await ok.text()).toContain('<div id="app">')
      const refused = await fetch(url.replace(/\?token=.*/, ''))
      expect(refused.status).toBe(401)
    } finally {
      child.kill('SIGTERM')
    }
  })
})
