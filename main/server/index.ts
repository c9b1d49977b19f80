/**
 * Browser mode: HTTP + WebSocket bridge on 127.0.0.1 that serves the built renderer and
 * carries the contract. Every request and socket needs the session token (401 without it);
 * Host and Origin are checked against the loopback address (no DNS rebinding, no cross-site
 * calls).
 *
 *   GET  /?token=T                → index.html, sets cookie dsd_token (HttpOnly, SameSite=Strict)
 *   GET  /<asset>                 → built renderer files (cookie or header auth)
 *   POST /api/invoke/<command>    → contract Result as JSON (header X-DSD-Token or cookie)
 *   GET  /api/events?token=T      → WebSocket; messages { event, payload }
 *   GET  /data/<path>             → files under the workspace (volumes), traversal-safe
 *   GET  /volume/<path>           → a volume for the viewer (main/services/volumes.ts)
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import { createApp, type App } from '../services/app'
import { contentSecurityPolicy } from './csp'
import { resolveInside } from './safe-path'

export interface ServerOptions {
  /** 0 picks a free port. */
  port?: number
  /** Loopback only; anything else is refused. */
  host?: '127.0.0.1' | 'localhost'
  /** The built renderer (dist/renderer). */
  staticDir: string
  workspace: string
  /** A fixed token (tests); random by default. */
  token?: string
  app?: App
}

export interface RunningServer {
  url: string
  origin: string
  token: string
  port: number
  app: App
  close(): Promise<void>
}

const MAX_BODY = 1 << 20

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.gz': 'application/gzip',
  '.nii': 'application/octet-stream',
}

function csp(port: number): string {
  return contentSecurityPolicy({ connect: [`ws://127.0.0.1:${port}`, `ws://localhost:${port}`] })
}

function tokenFrom(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers['x-dsd-token']
  if (typeof header === 'string') return header
  const q = url.searchParams.get('token')
  if (q) return q
  const cookie = req.headers.cookie
  if (cookie) {
    for (const part of cookie.split(';')) {
      const [k, ...v] = part.trim().split('=')
      if (k === 'dsd_token') return v.join('=')
    }
  }
  return undefined
}

function sameToken(a: string | undefined, b: string): boolean {
  if (!a) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' })
  res.end(body)
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1'
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`dsd serve binds to 127.0.0.1 only (asked for ${String(host)})`)
  }
  const token = options.token ?? randomBytes(24).toString('base64url')
  const app =
    options.app ?? createApp({ workspace: options.workspace, transport: 'browser' })
  let port = 0
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`])
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`])

  /** Host and Origin checks; returns an error message or undefined. */
  const checkOrigin = (req: IncomingMessage): string | undefined => {
    if (!allowedHosts().has(req.headers.host ?? '')) return 'bad Host header'
    const origin = req.headers.origin
    if (origin !== undefined && !allowedOrigins().has(origin)) return `origin ${origin} not allowed`
    return undefined
  }

  const serveStatic = (res: ServerResponse, pathname: string, setCookie: boolean) => {
    let file: string
    try {
      file = resolveInside(options.staticDir, pathname === '/' ? 'index.html' : pathname)
    } catch {
      return send(res, 400, 'bad path')
    }
    if (!existsSync(file) || !statSync(file).isFile()) {
      // History-mode routes fall back to the app; missing assets are 404.
      if (extname(pathname)) return send(res, 404, 'not found')
      file = join(options.staticDir, 'index.html')
      if (!existsSync(file)) {
        return send(
          res,
          503,
          `The renderer is not built (${options.staticDir} is missing). Run \`npm run build\`.`,
        )
      }
    }
    const headers: Record<string, string> = {
      'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cache-Control': extname(file) === '.html' ? 'no-store' : 'private, max-age=3600',
    }
    if (extname(file) === '.html') {
      headers['Content-Security-Policy'] = csp(port)
      headers['X-Frame-Options'] = 'DENY'
    }
    if (setCookie) {
      headers['Set-Cookie'] = `dsd_token=${token}; HttpOnly; SameSite=Strict; Path=/`
    }
    res.writeHead(200, headers)
    createReadStream(file).pipe(res)
  }

  const invoke = async (req: IncomingMessage, res: ServerResponse, name: string) => {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > MAX_BODY) return send(res, 413, 'request too large')
      chunks.push(chunk as Buffer)
    }
    let payload: unknown = {}
    if (size > 0) {
      try {
        payload = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return send(
          res,
          400,
          JSON.stringify({
            ok: false,
            error: { code: 'BAD_JSON', message: 'The request body is not valid JSON.', details: {} },
          }),
          'application/json',
        )
      }
    }
    const result = await app.bridge.invoke(name, payload)
    send(res, 200, JSON.stringify(result), 'application/json')
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const bad = checkOrigin(req)
    if (bad) return send(res, 403, `forbidden: ${bad}`)
    const given = tokenFrom(req, url)
    if (!sameToken(given, token)) {
      return send(res, 401, 'unauthorized: this DSD Studio server needs its session token (?token=…)')
    }
    const { pathname } = url
    if (pathname.startsWith('/api/invoke/')) {
      if (req.method !== 'POST') return send(res, 405, 'use POST')
      invoke(req, res, decodeURIComponent(pathname.slice('/api/invoke/'.length))).catch(
        (err: Error) => send(res, 500, err.message),
      )
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed')
    if (pathname.startsWith('/volume/')) {
      // The viewer's volumes (main/services/volumes.ts parses and validates the path).
      void import('../services/volumes')
        .then((v) => v.volumeResponse(options.workspace, pathname.slice('/volume/'.length)))
        .then((r) => {
          res.writeHead(r.status, r.headers)
          for (const part of r.body) if (req.method === 'GET') res.write(part)
          res.end()
        })
        .catch((err: Error) => send(res, 500, err.message))
      return
    }
    if (pathname.startsWith('/data/')) {
      let file: string
      try {
        file = resolveInside(options.workspace, pathname.slice('/data/'.length))
      } catch {
        return send(res, 400, 'bad path')
      }
      if (!existsSync(file) || !statSync(file).isFile()) return send(res, 404, 'not found')
      res.writeHead(200, {
        'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
        'Cache-Control': 'no-store',
      })
      createReadStream(file).pipe(res)
      return
    }
    serveStatic(res, pathname, url.searchParams.has('token'))
  })

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })
  const sockets = new Set<WebSocket>()
  const unsubscribe = app.bridge.subscribe((event, payload) => {
    const msg = JSON.stringify({ event, payload })
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(msg)
  })
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const refuse = (status: number, text: string) => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      socket.destroy()
    }
    if (url.pathname !== '/api/events') return refuse(404, 'Not Found')
    if (checkOrigin(req)) return refuse(403, 'Forbidden')
    if (!sameToken(tokenFrom(req, url), token)) return refuse(401, 'Unauthorized')
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws)
      ws.on('close', () => sockets.delete(ws))
      ws.on('message', () => undefined) // events flow one way
    })
  })

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolveListen())
  })
  port = (server.address() as AddressInfo).port
  const origin = `http://127.0.0.1:${port}`
  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    port,
    app,
    close: async () => {
      unsubscribe()
      for (const ws of sockets) ws.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
      await app.close()
    },
  }
}
