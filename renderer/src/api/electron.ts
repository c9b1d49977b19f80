import type {
  CommandName,
  CommandRequest,
  CommandResponse,
  EventName,
  EventPayload,
} from '../../../main/contract'
import { ApiError, volumeBody } from './errors'
import type { Transport } from './transport'

/** The contract over the Electron preload bridge (`window.dsd`). */
export function createElectronTransport(bridge: DsdPreloadBridge): Transport {
  return {
    kind: 'electron',
    description: 'Electron IPC (preload bridge)',
    async invoke<N extends CommandName>(name: N, request: CommandRequest<N>) {
      const result = await bridge.invoke(name, request)
      if (!result.ok) {
        throw ApiError.fromShape(result.error)
      }
      return result.value as CommandResponse<N>
    },
    on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void) {
      return bridge.on(event, (payload) => listener(payload as EventPayload<E>))
    },
    async fetchVolume(path: string, signal?: AbortSignal) {
      // DATA_SCHEME of main/contract (a value the renderer does not import).
      return volumeBody(await fetch(`dsd-data://volume/${path}`, { signal }), path)
    },
    connection: () => 'open',
    onConnectionChange: () => () => {},
    close: () => {},
  }
}
