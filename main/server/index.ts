/**
 * Browser mode: HTTP + WebSocket bridge on 127.0.0.1 that serves the built renderer and
 * carries the contract. Every request and socket needs the session token (401 without it);
 * Host and Origin are checked against the loopback address (no DNS rebinding, no cross-site
 * calls).
 *
 *   GET  /?token=T                → index.html, sets cookie dsd_token (HttpOnly, SameSite=Strict);
 *                                   the query token is accepted on page loads only
 *   GET  /<asset>                 → built renderer files (cookie or header auth)
 *   POST /api/invoke/<command>    → contract Result as JSON (header X-DSD-Token or cookie)
 *   GET  /api/events              → WebSocket (cookie, or subprotocol `dsd.token.<T>`);
 *                                   messages { event, payload }
 *   GET  /data/<path>             → files under the workspace, traversal-safe, always as an
 *                                   attachment with a sandboxing CSP (never active content)
 *   GET  /volume/<path>           → a volume for the viewer (main/services/volumes.ts)
 *
 * Nothing a client sends can stop the process: URL parsing and decoding cannot throw, every
 * handler's failure becomes a 4xx/5xx (or a closed socket once the answer has started), every
 * socket has an 'error' handler, and WebSocket frames over the size limit are answered with
 * close code 1009 (an unmasked or malformed frame: 1002).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream, statSync, type Stats } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { basename, extname, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { pipeline } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { createApp, type App } from '../services/app'
import { contentSecurityPolicy } from './csp'
import { resolveInside } from '../safe-path'

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
  /** Where server-side failures are reported (default: console.error). */
  log?: (message: string) => void
}

export interface RunningServer {
  url: string
  origin: string
  token: string
  port: number
  app: App
  close(): Promise<void>
}

/** Largest request body (bytes). */
export const MAX_BODY = 1 << 20
/** Largest WebSocket message a client may send (bytes); larger frames are closed with 1009. */
export const MAX_WS_MESSAGE = 64 * 1024
/** The WebSocket subprotocol prefix that carries the token (browsers cannot set headers). */
export const WS_TOKEN_PROTOCOL = 'dsd.token.'

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
}

/** Headers of every workspace file: a download that can never run on the app's origin. */
const DATA_HEADERS = {
  'Content-Type': 'application/octet-stream',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; sandbox; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
}

function csp(port: number): string {
  return contentSecurityPolicy({ connect: [`ws://127.0.0.1:${port}`, `ws://localhost:${port}`] })
}

/** The request target split into a still-encoded path and its query; null when unusable. */
export function parseTarget(raw: string | undefined): { pathname: string; query: URLSearchParams } | null {
  if (typeof raw !== 'string' || !raw.startsWith('/')) return null
  const hash = raw.indexOf('#')
  const target = hash < 0 ? raw : raw.slice(0, hash)
  const q = target.indexOf('?')
  const pathname = q < 0 ? target : target.slice(0, q)
  // URLSearchParams never throws: malformed escapes are kept as they are.
  return { pathname, query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)) }
}

/** decodeURIComponent that answers undefined instead of throwing. */
export function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

function cookieToken(req: IncomingMessage): string | undefined {
  const cookie = req.headers.cookie
  if (typeof cookie !== 'string') return undefined
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === 'dsd_token') return part.slice(eq + 1).trim()
  }
  return undefined
}

function wsProtocolToken(req: IncomingMessage): string | undefined {
  const header = req.headers['sec-websocket-protocol']
  if (typeof header !== 'string') return undefined
  for (const p of header.split(',')) {
    const t = p.trim()
    if (t.startsWith(WS_TOKEN_PROTOCOL)) return t.slice(WS_TOKEN_PROTOCOL.length)
  }
  return undefined
}

function sameToken(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string' || a.length === 0) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function fileStat(path: string): Stats | null {
  try {
    return statSync(path)
  } catch {
    return null
  }
}

/** Answer unless an answer has already started; then the connection is closed. */
function send(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
  extra: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    res.destroy()
    return
  }
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  })
  res.end(body)
}

function sendJsonError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, JSON.stringify({ ok: false, error: { code, message, details: {} } }), 'application/json')
}

/** Stream a file; a read error after the headers closes the connection. */
function sendFile(req: IncomingMessage, res: ServerResponse, file: string, headers: Record<string, string>, size: number): void {
  res.writeHead(200, { ...headers, 'Content-Length': String(size) })
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  pipeline(createReadStream(file), res, (err) => {
    if (err) res.destroy()
  })
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1'
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`dsd serve binds to 127.0.0.1 only (asked for ${String(host)})`)
  }
  const log = options.log ?? ((m: string) => console.error(m))
  const token = options.token ?? randomBytes(24).toString('base64url')
  const app = options.app ?? createApp({ workspace: options.workspace, transport: 'browser' })
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

  /** A page load: a GET of the app's HTML (the only request that may carry ?token=). */
  const isPageLoad = (req: IncomingMessage, pathname: string): boolean =>
    (req.method === 'GET' || req.method === 'HEAD') &&
    !pathname.startsWith('/api/') &&
    !pathname.startsWith('/data/') &&
    (pathname === '/' || pathname.endsWith('.html') || extname(pathname) === '')

  const serveStatic = (req: IncomingMessage, res: ServerResponse, pathname: string, setCookie: boolean) => {
    let file: string
    try {
      file = resolveInside(options.staticDir, pathname === '/' ? 'index.html' : pathname)
    } catch {
      return send(res, 400, 'bad path')
    }
    let st = fileStat(file)
    if (!st?.isFile()) {
      // History-mode routes fall back to the app; missing assets are 404.
      if (extname(pathname)) return send(res, 404, 'not found')
      file = join(options.staticDir, 'index.html')
      st = fileStat(file)
      if (!st?.isFile()) {
        return send(res, 503, `The renderer is not built (${options.staticDir} is missing). Run \`npm run build\`.`)
      }
    }
    const html = extname(file) === '.html'
    const headers: Record<string, string> = {
      'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'X-Frame-Options': 'DENY',
      'Cache-Control': html ? 'no-store' : 'private, max-age=3600',
    }
    if (html) headers['Content-Security-Policy'] = csp(port)
    if (setCookie) headers['Set-Cookie'] = `dsd_token=${token}; HttpOnly; SameSite=Strict; Path=/`
    sendFile(req, res, file, headers, st.size)
  }

  /** The viewer's volumes: main/services/volumes.ts parses and validates the path. */
  const serveVolume = async (req: IncomingMessage, res: ServerResponse, pathname: string) => {
    const { volumeResponse } = await import('../services/volumes')
    const r = await volumeResponse(options.workspace, pathname.slice('/volume/'.length))
    res.writeHead(r.status, { ...r.headers, 'Content-Security-Policy': DATA_HEADERS['Content-Security-Policy'], 'Cross-Origin-Resource-Policy': 'same-origin' })
    if (req.method !== 'HEAD') for (const part of r.body) res.write(part)
    res.end()
  }

  const serveData = (req: IncomingMessage, res: ServerResponse, pathname: string) => {
    let file: string
    try {
      file = resolveInside(options.workspace, pathname.slice('/data/'.length))
    } catch {
      return send(res, 400, 'bad path')
    }
    const st = fileStat(file)
    if (!st?.isFile()) return send(res, 404, 'not found')
    const name = basename(file).replace(/[^A-Za-z0-9._-]/g, '_')
    sendFile(req, res, file, { ...DATA_HEADERS, 'Content-Disposition': `attachment; filename="${name}"` }, st.size)
  }

  const invoke = async (req: IncomingMessage, res: ServerResponse, rawName: string) => {
    const name = safeDecode(rawName)
    if (name === undefined) return sendJsonError(res, 400, 'BAD_PATH', 'The command name is not valid percent-encoding.')
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY) return send(res, 413, 'request too large', undefined, { Connection: 'close' })
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      // leaving the loop stops reading (and closes the connection after the answer)
      if (size > MAX_BODY) return send(res, 413, 'request too large', undefined, { Connection: 'close' })
      chunks.push(chunk as Buffer)
    }
    let payload: unknown = {}
    if (size > 0) {
      try {
        payload = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return sendJsonError(res, 400, 'BAD_JSON', 'The request body is not valid JSON.')
      }
    }
    const result = await app.bridge.invoke(name, payload)
    send(res, 200, JSON.stringify(result), 'application/json')
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const target = parseTarget(req.url)
    if (!target) return send(res, 400, 'bad request target')
    const bad = checkOrigin(req)
    if (bad) return send(res, 403, `forbidden: ${bad}`)
    const { pathname, query } = target
    const viaQuery = isPageLoad(req, pathname) && sameToken(query.get('token') ?? undefined, token)
    const authed = viaQuery || sameToken(req.headers['x-dsd-token'] as string | undefined, token) || sameToken(cookieToken(req), token)
    if (!authed) {
      return send(res, 401, 'unauthorized: this DSD Studio server needs its session token (open the address `dsd serve` printed, with its ?token=)')
    }
    if (pathname.startsWith('/api/invoke/')) {
      if (req.method !== 'POST') return send(res, 405, 'use POST', undefined, { Allow: 'POST' })
      return invoke(req, res, pathname.slice('/api/invoke/'.length))
    }
    if (pathname.startsWith('/api/')) return send(res, 404, 'not found')
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed', undefined, { Allow: 'GET, HEAD' })
    if (pathname.startsWith('/data/')) return serveData(req, res, pathname)
    if (pathname.startsWith('/volume/')) return serveVolume(req, res, pathname)
    serveStatic(req, res, pathname, viaQuery)
  }

  const server = createServer((req, res) => {
    req.on('error', () => res.destroy())
    handle(req, res).catch((err: unknown) => {
      log(`dsd serve: ${req.method} ${String(req.url).slice(0, 200)} failed: ${(err as Error)?.stack ?? String(err)}`)
      send(res, 500, 'internal error: the request failed on the server; see its log')
    })
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed HTTP (bad request line, oversized headers, …): answer 400 if possible, then close.
    if (err.code !== 'ECONNRESET' && socket.writable) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    } else socket.destroy()
  })
  server.on('error', (err) => log(`dsd serve: server error: ${err.message}`))

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_WS_MESSAGE,
    // Echo the token subprotocol (a browser refuses a socket whose protocol is not echoed).
    handleProtocols: (protocols) => {
      for (const p of protocols) if (p.startsWith(WS_TOKEN_PROTOCOL)) return p
      return false
    },
  })
  wss.on('error', (err) => log(`dsd serve: WebSocket server error: ${err.message}`))
  const sockets = new Set<WebSocket>()
  const unsubscribe = app.bridge.subscribe((event, payload) => {
    const msg = JSON.stringify({ event, payload })
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(msg)
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const refuse = (status: number, text: string) => {
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      socket.destroy()
    }
    try {
      const target = parseTarget(req.url)
      if (!target || target.pathname !== '/api/events') return refuse(404, 'Not Found')
      if (checkOrigin(req)) return refuse(403, 'Forbidden')
      if (!sameToken(cookieToken(req), token) && !sameToken(wsProtocolToken(req), token)) return refuse(401, 'Unauthorized')
      wss.handleUpgrade(req, socket, head, (ws) => {
        sockets.add(ws)
        // Oversized (1009) or malformed (1002) frames: ws has already sent the close frame and
        // closes the socket; the handler only keeps the error from reaching the process.
        ws.on('error', () => undefined)
        ws.on('close', () => sockets.delete(ws))
        ws.on('message', () => undefined) // events flow one way
      })
    } catch (err) {
      log(`dsd serve: WebSocket upgrade failed: ${(err as Error)?.message ?? String(err)}`)
      refuse(500, 'Internal Server Error')
    }
  })

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolveListen()
    })
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
