/**
 * Nothing a client sends stops `dsd serve`: a real `dsd serve` child process gets malformed
 * request lines, paths, percent-encodings, headers and bodies, malformed WebSocket upgrades
 * and frames (oversized, unmasked, bad opcodes, bad UTF-8), aborted connections and a seeded
 * stream of random requests, over raw TCP sockets. After every attack the process must still
 * be alive and answer a real command.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('serve-robust')
let child: ChildProcess
let port = 0
let token = ''
let stderr = ''

/** Send raw bytes; resolve with everything the server sent back before closing (or timeout). */
function raw(bytes: string | Buffer, opts: { waitMs?: number; endAfterWrite?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const s = connect(port, '127.0.0.1')
    const done = () => {
      clearTimeout(timer)
      s.destroy()
      resolve(Buffer.concat(chunks))
    }
    const timer = setTimeout(done, opts.waitMs ?? 2000)
    s.on('data', (c) => chunks.push(c))
    s.on('close', done)
    s.on('error', done)
    s.write(bytes, () => {
      if (opts.endAfterWrite) s.end()
    })
  })
}

function status(reply: Buffer): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(reply.toString('latin1'))
  return m ? Number(m[1]) : 0
}

const host = () => `Host: 127.0.0.1:${port}\r\n`

function request(method: string, target: string, headers = '', body = ''): string {
  return `${method} ${target} HTTP/1.1\r\n${host()}${headers}Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

/** The server is alive and answers a real command. */
async function alive(): Promise<void> {
  expect(child.exitCode, `dsd serve exited; stderr:\n${stderr}`).toBeNull()
  const reply = await raw(
    request('POST', '/api/invoke/app.ping', `X-DSD-Token: ${token}\r\nContent-Type: application/json\r\n`, '{"message":"still here"}'),
  )
  expect(status(reply), reply.toString('latin1').slice(0, 300)).toBe(200)
  expect(reply.toString('utf8')).toContain('"still here"')
}

/** Open a WebSocket by hand (so that any frame, masked or not, can follow). */
async function wsOpen(): Promise<{ send(b: Buffer): void; closed: Promise<Buffer> }> {
  const s = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  let upgraded = false
  const opened = new Promise<void>((resolve, reject) => {
    s.on('data', (c) => {
      if (!upgraded) {
        const text = c.toString('latin1')
        if (!text.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${text.slice(0, 100)}`))
        upgraded = true
        const rest = c.subarray(c.indexOf('\r\n\r\n') + 4)
        if (rest.length) chunks.push(rest)
        resolve()
      } else chunks.push(c)
    })
    s.on('error', reject)
  })
  const closed = new Promise<Buffer>((resolve) => {
    const timer = setTimeout(() => s.destroy(), 5000)
    s.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
  })
  s.write(
    `GET /api/events HTTP/1.1\r\n${host()}Upgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
      `Sec-WebSocket-Protocol: dsd.token.${token}\r\n\r\n`,
  )
  await opened
  return { send: (b) => s.write(b), closed }
}

/** A client frame: FIN + opcode, masked unless told otherwise, with a real or claimed length. */
function frame(opcode: number, payload: Buffer, opts: { mask?: boolean; claimLength?: bigint; fin?: boolean } = {}): Buffer {
  const mask = opts.mask ?? true
  const len = opts.claimLength ?? BigInt(payload.length)
  const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | opcode]
  const m = mask ? 0x80 : 0
  let ext = Buffer.alloc(0)
  if (len < 126n) head.push(m | Number(len))
  else if (len < 65536n) {
    head.push(m | 126)
    ext = Buffer.alloc(2)
    ext.writeUInt16BE(Number(len))
  } else {
    head.push(m | 127)
    ext = Buffer.alloc(8)
    ext.writeBigUInt64BE(len)
  }
  const key = mask ? randomBytes(4) : Buffer.alloc(0)
  const body = Buffer.from(payload)
  if (mask) for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]
  return Buffer.concat([Buffer.from(head), ext, key, body])
}

/** The close code in the server's close frame (server frames are unmasked). */
function closeCode(bytes: Buffer): number | null {
  for (let i = 0; i + 3 < bytes.length; ) {
    const op = bytes[i] & 0x0f
    let len = bytes[i + 1] & 0x7f
    let off = i + 2
    if (len === 126) {
      len = bytes.readUInt16BE(off)
      off += 2
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(off))
      off += 8
    }
    if (op === 8) return len >= 2 ? bytes.readUInt16BE(off) : 1005
    i = off + len
  }
  return null
}

beforeAll(async () => {
  const staticDir = join(TMP, 'static')
  const workspace = join(TMP, 'ws')
  mkdirSync(staticDir, { recursive: true })
  mkdirSync(join(workspace, 'datasets'), { recursive: true })
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>DSD Studio</title>')
  writeFileSync(join(workspace, 'datasets', 'a.bin'), randomBytes(1000))
  child = spawn(process.execPath, [join(ROOT, 'bin/dsd.mjs'), 'serve', '--port', '0', '--workspace', workspace, '--static-dir', staticDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stderr!.on('data', (c) => (stderr += String(c)))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (c) => {
      out += String(c)
      const m = /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)
      if (m) resolve(m[0])
    })
    child.on('exit', (code) => reject(new Error(`dsd serve exited (${code}): ${stderr}`)))
  })
  const u = new URL(url)
  port = Number(u.port)
  token = u.searchParams.get('token')!
  await alive()
})

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
  }
  rmSync(TMP, { recursive: true, force: true })
})

describe('dsd serve survives anything a client sends', () => {
  it('malformed request targets and percent-encodings', async () => {
    const auth = `X-DSD-Token: ${token}\r\n`
    const cases: [string, string, string, number[]][] = [
      ['GET', '//', '', [401]],
      ['GET', '//', auth, [200]],
      ['GET', '///x//y', auth, [200]],
      ['GET', '/%', auth, [400]],
      ['GET', '/%E0%A4%A', auth, [400]],
      ['GET', '/data/%', auth, [400]],
      ['GET', '/data/%ZZ/x', auth, [400]],
      ['POST', '/api/invoke/%E0%A4%A', auth, [400]],
      ['POST', '/api/invoke/%', auth, [400]],
      ['POST', '/api/invoke/' + 'x'.repeat(5000), auth, [200]],
      ['POST', '/api/invoke/__proto__', auth, [200]],
      ['POST', '/api/invoke/constructor', auth, [200]],
      ['GET', '/api/invoke/app.ping', auth, [405]],
      ['GET', '/api/nothing', auth, [404]],
      ['OPTIONS', '*', auth, [400]],
      ['GET', `http://127.0.0.1:${port}/`, auth, [400]],
      ['GET', '/?token=%', '', [401]],
      ['GET', '/data/', auth, [404]],
      ['GET', '/data/datasets', auth, [404]],
      ['DELETE', '/data/datasets/a.bin', auth, [405]],
    ]
    for (const [method, target, headers, expected] of cases) {
      const reply = await raw(request(method, target, headers))
      expect(expected, `${method} ${target}: ${reply.toString('latin1').slice(0, 120)}`).toContain(status(reply))
    }
    await alive()
  })

  it('malformed HTTP: garbage, bad versions, oversized and broken headers', async () => {
    const attacks: (string | Buffer)[] = [
      '\x00\x01\x02\x03 garbage\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET\r\n\r\n',
      `GET / HTTP/1.1\r\n${host()}X-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
      `GET / HTTP/1.1\r\n${host()}Bad Header\r\n\r\n`,
      `GET / HTTP/1.1\r\n${host()}Content-Length: -1\r\n\r\n`,
      `GET / HTTP/1.1\r\n${host()}Content-Length: 1\r\nContent-Length: 2\r\n\r\n`,
      `POST /api/invoke/app.ping HTTP/1.1\r\n${host()}X-DSD-Token: ${token}\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n`,
      `GET / HTTP/1.1\r\nHost: \u00ff\u00fe\r\n\r\n`,
      randomBytes(4096),
    ]
    for (const a of attacks) {
      const reply = await raw(a, { waitMs: 1500 })
      expect([0, 400, 401, 403, 413, 431], reply.toString('latin1').slice(0, 80)).toContain(status(reply))
    }
    await alive()
  })

  it('bodies: too large, lying lengths, aborted, not JSON, hostile JSON', async () => {
    const auth = `X-DSD-Token: ${token}\r\nContent-Type: application/json\r\n`
    const big = await raw(
      `POST /api/invoke/app.ping HTTP/1.1\r\n${host()}${auth}Content-Length: ${2 << 20}\r\n\r\n` + 'x'.repeat(1000),
    )
    expect(status(big)).toBe(413)
    // a streamed body that grows past the limit without a length
    const chunked = await raw(
      `POST /api/invoke/app.ping HTTP/1.1\r\n${host()}${auth}Transfer-Encoding: chunked\r\n\r\n` +
        `${(1 << 20).toString(16)}\r\n${'y'.repeat(1 << 20)}\r\n10\r\n${'y'.repeat(16)}\r\n0\r\n\r\n`,
      { waitMs: 4000 },
    )
    expect(status(chunked)).toBe(413)
    // the client promises 100 bytes, sends 10 and leaves
    await raw(`POST /api/invoke/app.ping HTTP/1.1\r\n${host()}${auth}Content-Length: 100\r\n\r\n0123456789`, {
      endAfterWrite: true,
      waitMs: 500,
    })
    for (const body of ['{not json', '[[[['.repeat(50_000), '['.repeat(200_000) + ']'.repeat(200_000), '"\ud800"', '{"__proto__":{"polluted":1}}', 'null', '1e999']) {
      const reply = await raw(request('POST', '/api/invoke/app.ping', auth, body))
      expect([200, 400], body.slice(0, 20)).toContain(status(reply))
      expect(reply.toString('utf8')).toMatch(/"ok":false/)
    }
    const dotdot = await raw(request('POST', '/api/invoke/runs.get', auth, '{"runId":".."}'))
    expect(dotdot.toString('utf8')).toMatch(/"code":"VALIDATION"/)
    await alive()
  })

  it('malformed WebSocket upgrades', async () => {
    const up = (target: string, extra = '') =>
      `GET ${target} HTTP/1.1\r\n${host()}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extra}\r\n`
    const cases: [string, number][] = [
      [up('//'), 404],
      [up('/%E0%A4%A'), 404],
      [up('/api/events?token=%'), 401],
      [up('/api/events', `Sec-WebSocket-Protocol: dsd.token.${'x'.repeat(3000)}\r\n`), 401],
      [up(`/api/events?token=${token}`), 401],
      [`GET /api/events HTTP/1.1\r\n${host()}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: dsd.token.${token}\r\n\r\n`, 400],
      [up('/api/events', `Sec-WebSocket-Protocol: dsd.token.${token}\r\nSec-WebSocket-Version: 99\r\n`), 400],
    ]
    for (const [text, expected] of cases) {
      const reply = await raw(text)
      expect(status(reply), text.split('\r\n')[0]).toBe(expected)
    }
    // a client that leaves in the middle of its handshake
    await raw(up('/api/events', `Sec-WebSocket-Protocol: dsd.token.${token}\r\n`).slice(0, 60), { endAfterWrite: true, waitMs: 300 })
    await alive()
  })

  it('WebSocket frames: oversized → 1009, unmasked or invalid → 1002, bad UTF-8 → 1007', async () => {
    const cases: [Buffer, number][] = [
      [frame(1, Buffer.alloc(70 * 1024, 0x61)), 1009],
      [frame(2, Buffer.alloc(10), { claimLength: 2n ** 62n }), 1009],
      [frame(1, Buffer.from('hello'), { mask: false }), 1002],
      [frame(3, Buffer.from('x')), 1002],
      [frame(0, Buffer.from('continuation without a start')), 1002],
      [frame(9, Buffer.alloc(200)), 1002], // a control frame over 125 bytes
      [Buffer.from([0xf1, 0x80, 0, 0, 0, 0]), 1002], // reserved bits
      [frame(1, Buffer.from([0xff, 0xfe, 0xfd])), 1007],
    ]
    for (const [bytes, code] of cases) {
      const ws = await wsOpen()
      ws.send(bytes)
      expect(closeCode(await ws.closed), bytes.subarray(0, 2).toString('hex')).toBe(code)
    }
    // ordinary client messages are ignored, the socket stays open
    const ws = await wsOpen()
    ws.send(frame(1, Buffer.from('{"hello":1}')))
    ws.send(frame(8, Buffer.from([0x03, 0xe8])))
    expect(closeCode(await ws.closed)).toBe(1000)
    await alive()
  })

  it('a seeded stream of random requests', async () => {
    // xorshift32, fixed seed: the same 150 requests every run
    let x = 0x9e3779b9
    const rand = () => {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      return (x >>> 0) / 2 ** 32
    }
    const pick = <T,>(a: T[]) => a[Math.floor(rand() * a.length)]
    const alphabet = '/%.?#&=;:@\\\x00\x7f\u00e9\ud800abc019ABC-_~*+ '
    for (let i = 0; i < 150; i++) {
      const path = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => pick([...alphabet])).join('')
      const method = pick(['GET', 'POST', 'HEAD', 'PUT', 'OPTIONS', 'G\u00c9T'])
      const headers = pick(['', `X-DSD-Token: ${token}\r\n`, `Cookie: dsd_token=${token}\r\n`, 'Cookie: ;;;=\r\n', 'Origin: null\r\n'])
      const body = pick(['', '{}', '{"runId":"../.."}', randomBytes(64).toString('latin1')])
      const prefix = pick(['', '/api/invoke/', '/data/', '/api/events'])
      await raw(Buffer.from(request(method, prefix + path, headers, body), 'latin1'), { waitMs: 1000 })
    }
    await alive()
  })

  it('never logged an uncaught error', () => {
    expect(stderr).not.toMatch(/uncaught|unhandled/i)
    expect(child.exitCode).toBeNull()
  })
})
