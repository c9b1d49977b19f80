import type { DsdApi } from '../../../main/contract'

/** The state of the event channel (the WebSocket in browser mode; always open in Electron). */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting'

/** A contract API plus what the UI shows about how it is connected. */
export interface Transport extends DsdApi {
  kind: 'electron' | 'browser'
  /** One line for the About page, e.g. "HTTP + WebSocket to http://127.0.0.1:5123/". */
  description: string
  connection(): ConnectionState
  onConnectionChange(listener: (state: ConnectionState) => void): () => void
  close(): void
  /**
   * A volume for the viewer from the data channel: `path` is an opaque volume path that
   * `review.case` answered (browser mode: `GET volume/<path>` with the session token;
   * Electron: `dsd-data://volume/<path>`). Resolves to the binary of `ViewerVolumeHeader`.
   */
  fetchVolume(path: string, signal?: AbortSignal): Promise<ArrayBuffer>
}
