import type {
  CommandName,
  CommandRequest,
  CommandResponse,
  EventName,
  EventPayload,
  Result,
} from '../../../main/contract'
import { ApiError, volumeBody } from './errors'
import type { ConnectionState, Transport } from './transport'

export interface BrowserTransportOptions {
  /** The page's base URL; API paths resolve against it (default: `document.baseURI`). */
  baseUrl?: string
  /** The session token from `?token=` (see token.ts); null sends no token. */
  token: string | null
  /** First reconnect delay in ms (doubles up to `maxReconnectMs`). */
  reconnectMs?: number
  maxReconnectMs?: number
}

type AnyListener = (payload: unknown) => void

/**
 * The contract over HTTP + WebSocket (browser mode, `dsd serve`):
 * commands are `POST api/invoke/<name>` answering a `Result`, events arrive on
 * `ws(s)://…/api/events` (token as subprotocol `dsd.token.<T>`) as `{ event, payload }`. The socket reconnects with backoff.
 */
export function createBrowserTransport(options: BrowserTransportOptions): Transport {
  const base = new URL('./', options.baseUrl ?? document.baseURI)
  const token = options.token
  const firstDelay = options.reconnectMs ?? 500
  const maxDelay = options.maxReconnectMs ?? 10_000
  const listeners = new Map<string, Set<AnyListener>>()
  const stateListeners = new Set<(state: ConnectionState) => void>()
  let state: ConnectionState = 'connecting'
  let socket: WebSocket | null = null
  let delay = firstDelay
  let timer: ReturnType<typeof setTimeout> | null = null
  let closed = false

  function setState(next: ConnectionState): void {
    if (next === state) return
    state = next
    for (const l of stateListeners) l(next)
  }

  function eventsUrl(): string {
    const url = new URL('api/events', base)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    return url.href
  }

  function connect(): void {
    if (closed) return
    // The token travels as a subprotocol (the server accepts it only there or in its cookie).
    const ws = token ? new WebSocket(eventsUrl(), [`dsd.token.${token}`]) : new WebSocket(eventsUrl())
    socket = ws
    ws.onopen = () => {
      delay = firstDelay
      setState('open')
    }
    ws.onmessage = (msg) => {
      let parsed: { event?: unknown; payload?: unknown }
      try {
        parsed = JSON.parse(String(msg.data))
      } catch {
        console.warn('dsd: ignoring a non-JSON event message')
        return
      }
      if (typeof parsed.event !== 'string') return
      for (const l of listeners.get(parsed.event) ?? []) {
        try {
          l(parsed.payload)
        } catch (err) {
          console.error(`dsd: listener for ${parsed.event} failed`, err)
        }
      }
    }
    ws.onclose = () => {
      if (socket !== ws) return
      socket = null
      if (closed) return
      setState('reconnecting')
      timer = setTimeout(connect, delay * (0.75 + Math.random() * 0.5))
      delay = Math.min(delay * 2, maxDelay)
    }
  }

  connect()

  async function invoke<N extends CommandName>(
    name: N,
    request: CommandRequest<N>,
  ): Promise<CommandResponse<N>> {
    const url = new URL(`api/invoke/${encodeURIComponent(name)}`, base)
    const headers: Record<string, string> = { 'Content-Type': 'application/json' }
    if (token) headers['X-DSD-Token'] = token
    let response: Response
    try {
      response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(request ?? {}),
        credentials: 'same-origin',
        cache: 'no-store',
      })
    } catch (err) {
      throw new ApiError(
        'NETWORK',
        `Cannot reach the DSD server at ${base.origin} (${(err as Error).message}); check that ` +
          '`dsd serve` is still running, then retry.',
        { command: name, url: url.href },
      )
    }
    if (response.status === 401) {
      throw new ApiError(
        'UNAUTHORIZED',
        token
          ? 'The server refused this session token (the server was probably restarted); open ' +
              'the new address that `dsd serve` printed, including its ?token=.'
          : 'No session token: open the address that `dsd serve` printed, including its ?token=.',
        { command: name, status: 401 },
      )
    }
    if (response.status === 403) {
      throw new ApiError(
        'FORBIDDEN',
        `The server refused this page (${(await response.text().catch(() => '')) || 'HTTP 403'}); ` +
          'open it at the exact address that `dsd serve` printed (127.0.0.1, not another host name).',
        { command: name, status: 403 },
      )
    }
    let body: Result<unknown> | undefined
    try {
      body = (await response.json()) as Result<unknown>
    } catch {
      body = undefined
    }
    if (!body || typeof body !== 'object' || typeof body.ok !== 'boolean') {
      throw new ApiError(
        `HTTP_${response.status}`,
        `The server answered ${name} with HTTP ${response.status} and no result; see the ` +
          'server log for the cause.',
        { command: name, status: response.status },
      )
    }
    if (!body.ok) {
      throw ApiError.fromShape(body.error)
    }
    return body.value as CommandResponse<N>
  }

  async function fetchVolume(path: string, signal?: AbortSignal): Promise<ArrayBuffer> {
    const url = new URL(`volume/${path}`, base)
    const headers: Record<string, string> = {}
    if (token) headers['X-DSD-Token'] = token
    let response: Response
    try {
      response = await fetch(url, { headers, credentials: 'same-origin', cache: 'no-store', signal })
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err
      throw new ApiError(
        'NETWORK',
        `Cannot load the volume ${path} from ${base.origin} (${(err as Error).message}); check that \`dsd serve\` is still running.`,
        { path },
      )
    }
    return volumeBody(response, path)
  }

  return {
    kind: 'browser',
    description: `HTTP + WebSocket to ${base.origin}`,
    invoke,
    on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void) {
      const set = listeners.get(event) ?? new Set<AnyListener>()
      listeners.set(event, set)
      const wrapped: AnyListener = (p) => listener(p as EventPayload<E>)
      set.add(wrapped)
      return () => {
        set.delete(wrapped)
      }
    },
    fetchVolume,
    connection: () => state,
    onConnectionChange(listener) {
      stateListeners.add(listener)
      return () => {
        stateListeners.delete(listener)
      }
    },
    close() {
      closed = true
      if (timer) clearTimeout(timer)
      socket?.close()
      socket = null
    },
  }
}
