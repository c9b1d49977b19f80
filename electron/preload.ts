/**
 * Sandboxed preload: exposes `window.dsd` with an allow-listed `invoke`/`on` and nothing else.
 * The command and event lists are injected at build time from main/contract (esbuild define),
 * so the preload bundles no contract code.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron'

declare const __DSD_COMMANDS__: string[]
declare const __DSD_EVENTS__: string[]
declare const __DSD_INVOKE_CHANNEL__: string
declare const __DSD_EVENT_CHANNEL__: string

const COMMANDS = new Set(__DSD_COMMANDS__)
const EVENTS = new Set(__DSD_EVENTS__)

contextBridge.exposeInMainWorld('dsd', {
  invoke(name: string, payload: unknown): Promise<unknown> {
    if (!COMMANDS.has(name)) {
      return Promise.resolve({
        ok: false,
        error: { code: 'UNKNOWN_COMMAND', message: `Unknown command ${name}.`, details: {} },
      })
    }
    return ipcRenderer.invoke(__DSD_INVOKE_CHANNEL__, name, payload)
  },
  on(event: string, listener: (payload: unknown) => void): () => void {
    if (!EVENTS.has(event)) throw new Error(`Unknown event ${event}`)
    const handler = (_e: IpcRendererEvent, msg: { event: string; payload: unknown }) => {
      if (msg.event === event) listener(msg.payload)
    }
    ipcRenderer.on(__DSD_EVENT_CHANNEL__, handler)
    return () => ipcRenderer.removeListener(__DSD_EVENT_CHANNEL__, handler)
  },
})
