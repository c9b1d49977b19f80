/**
 * The edge every transport goes through: validates command requests against the contract's
 * schemas, calls the handler, turns failures into `{ code, message, details }`, and fans
 * events out to subscribers. Electron IPC, the HTTP/WebSocket server and in-process callers
 * all use one Bridge, so validation and error shapes are identical everywhere.
 */
import {
  commands,
  events,
  type CommandName,
  type CommandParams,
  type CommandRequest,
  type CommandResponse,
  type DsdApi,
  type EventName,
  type EventPayload,
  type Result,
} from '../contract'
import { DsdError, toErrorShape } from '../errors'

export type Handlers = {
  [N in CommandName]: (params: CommandParams<N>) => Promise<CommandResponse<N>>
}

export type EventListener = (name: EventName, payload: unknown) => void

export interface BridgeOptions {
  /** Also validate responses (on in tests and development; catches contract drift). */
  validateResponses?: boolean
}

export class Bridge {
  private readonly listeners = new Set<EventListener>()

  constructor(
    private readonly handlers: Handlers,
    private readonly options: BridgeOptions = {},
  ) {}

  /** Untyped entry point for transports: `name` and `payload` come from outside. */
  async invoke(name: unknown, payload: unknown): Promise<Result<unknown>> {
    try {
      if (typeof name !== 'string' || !Object.hasOwn(commands, name)) {
        throw new DsdError('UNKNOWN_COMMAND', `Unknown command ${JSON.stringify(name)}.`, {
          command: name,
        })
      }
      const command = name as CommandName
      const parsed = commands[command].request.safeParse(payload ?? {})
      if (!parsed.success) {
        throw new DsdError(
          'VALIDATION',
          `Invalid request for ${command}: ${parsed.error.issues
            .map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`)
            .join('; ')}`,
          { command, issues: parsed.error.issues },
        )
      }
      const handler = this.handlers[command] as (p: unknown) => Promise<unknown>
      const value = await handler(parsed.data)
      if (this.options.validateResponses) {
        const check = commands[command].response.safeParse(value)
        if (!check.success) {
          throw new DsdError('BAD_RESPONSE', `Handler for ${command} broke the contract.`, {
            command,
            issues: check.error.issues,
          })
        }
      }
      return { ok: true, value }
    } catch (err) {
      return { ok: false, error: toErrorShape(err) }
    }
  }

  /** Push an event to every subscriber (payload validated against the contract). */
  emit<E extends EventName>(name: E, payload: EventPayload<E>): void {
    const parsed = events[name].parse(payload)
    for (const listener of this.listeners) {
      try {
        listener(name, parsed)
      } catch {
        // A broken subscriber (closed socket, destroyed window) must not stop the others.
      }
    }
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The typed API for in-process callers (CLI, tests): throws DsdError on failure. */
  api(): DsdApi {
    return {
      invoke: async <N extends CommandName>(name: N, request: CommandRequest<N>) => {
        const result = await this.invoke(name, request)
        if (!result.ok) {
          throw new DsdError(result.error.code, result.error.message, result.error.details, result.error.appMessage)
        }
        return result.value as CommandResponse<N>
      },
      on: <E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void) =>
        this.subscribe((name, payload) => {
          if (name === event) listener(payload as EventPayload<E>)
        }),
    }
  }
}
