/**
 * The Electron shell: one window, a sandboxed preload with an allow-listed bridge, the app
 * served from a privileged custom scheme (never file://, never remote), and large data on a
 * second custom scheme. The only code in the project that imports 'electron'.
 */
import { app, BrowserWindow, ipcMain, net, protocol, session, shell } from 'electron'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DATA_SCHEME, IPC_EVENT_CHANNEL, IPC_INVOKE_CHANNEL } from '../main/contract'
import { contentSecurityPolicy } from '../main/server/csp'
import { resolveInside } from '../main/safe-path'
import { createApp } from '../main/services/app'
import { workspaceRoot } from '../main/services/workspace-root'
import { projectRoot } from '../main/version'

const APP_SCHEME = 'dsd-app'
const APP_ORIGIN = `${APP_SCHEME}://app`
const CSP = contentSecurityPolicy({ img: [`${DATA_SCHEME}:`], connect: [`${DATA_SCHEME}:`] })

protocol.registerSchemesAsPrivileged([
  {
    scheme: APP_SCHEME,
    privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true },
  },
  { scheme: DATA_SCHEME, privileges: { secure: true, supportFetchAPI: true, stream: true, corsEnabled: true } },
])

const rendererDir = join(projectRoot(), 'dist', 'renderer')
// The same workspace as the `dsd` CLI, so runs trained headless show up in the app.
const workspace = workspaceRoot()
// `export.open` shows an export folder (main checks it is one of the workspace's exports).
const dsd = createApp({ workspace, transport: 'electron', openFolder: (folder) => shell.openPath(folder) })

/** Serve a file from `root` for a custom-scheme URL path, traversal-safe. */
async function serveFrom(root: string, pathname: string, html: boolean): Promise<Response> {
  let file: string
  try {
    file = resolveInside(root, pathname)
  } catch {
    return new Response('bad path', { status: 400 })
  }
  if (!existsSync(file)) return new Response('not found', { status: 404 })
  const res = await net.fetch(pathToFileURL(file).toString())
  if (!html) return res
  const headers = new Headers(res.headers)
  headers.set('Content-Security-Policy', CSP)
  return new Response(res.body, { status: res.status, headers })
}

/** Workspace files: bytes only, never active content (the same headers as browser mode). */
async function serveData(pathname: string): Promise<Response> {
  const res = await serveFrom(workspace, pathname, false)
  if (!res.ok) return res
  const headers = new Headers(res.headers)
  headers.set('Content-Type', 'application/octet-stream')
  headers.set('X-Content-Type-Options', 'nosniff')
  headers.set('Content-Security-Policy', "default-src 'none'; sandbox; frame-ancestors 'none'")
  headers.set('Content-Disposition', 'attachment')
  return new Response(res.body, { status: res.status, headers })
}

function isAppFrame(url: string | undefined): boolean {
  return typeof url === 'string' && url.startsWith(`${APP_ORIGIN}/`)
}

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 1024,
    minHeight: 700,
    title: 'DSD Studio',
    show: false,
    webPreferences: {
      preload: join(projectRoot(), 'dist', 'electron', 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
      spellcheck: false,
    },
  })
  win.once('ready-to-show', () => win.show())
  const unsubscribe = dsd.bridge.subscribe((event, payload) => {
    if (!win.isDestroyed()) win.webContents.send(IPC_EVENT_CHANNEL, { event, payload })
  })
  win.on('closed', unsubscribe)
  void win.loadURL(`${APP_ORIGIN}/index.html`)
  return win
}

app.on('web-contents-created', (_event, contents) => {
  // No navigation away from the app and no new windows; links open in the system browser.
  contents.on('will-navigate', (event, url) => {
    if (!isAppFrame(url)) event.preventDefault()
  })
  contents.on('will-attach-webview', (event) => event.preventDefault())
  contents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url)
    return { action: 'deny' }
  })
})

app.whenReady().then(() => {
  // No permission is ever granted: requests (camera, notifications, …) and the synchronous
  // checks Chromium makes before them (clipboard, media, storage access, …) are all denied.
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false))
  session.defaultSession.setPermissionCheckHandler(() => false)
  session.defaultSession.setDevicePermissionHandler(() => false)
  // Nothing remote: block every request that is not one of our schemes or devtools.
  session.defaultSession.webRequest.onBeforeRequest((details, callback) => {
    const ok =
      details.url.startsWith(`${APP_SCHEME}:`) ||
      details.url.startsWith(`${DATA_SCHEME}:`) ||
      details.url.startsWith('devtools:') ||
      details.url.startsWith('data:') ||
      details.url.startsWith('blob:')
    callback({ cancel: !ok })
  })
  protocol.handle(APP_SCHEME, (request) => {
    const url = new URL(request.url)
    if (url.host !== 'app') return new Response('not found', { status: 404 })
    const path = url.pathname === '/' ? 'index.html' : url.pathname
    return serveFrom(rendererDir, path, path.endsWith('.html'))
  })
  protocol.handle(DATA_SCHEME, async (request) => {
    const url = new URL(request.url)
    if (url.host === 'volume') {
      // The viewer's volumes (main/services/volumes.ts parses and validates the path).
      const { volumeResponse } = await import('../main/services/volumes')
      const r = await volumeResponse(workspace, url.pathname.slice(1))
      const headers = { ...r.headers, 'Access-Control-Allow-Origin': APP_ORIGIN }
      return new Response(new Blob(r.body), { status: r.status, headers })
    }
    if (url.host !== 'workspace') return new Response('not found', { status: 404 })
    return serveData(url.pathname)
  })
  ipcMain.handle(IPC_INVOKE_CHANNEL, async (event, name: unknown, payload: unknown) => {
    if (!isAppFrame(event.senderFrame?.url)) {
      return { ok: false, error: { code: 'FORBIDDEN', message: 'Not the app frame.', details: {} } }
    }
    return dsd.bridge.invoke(name, payload)
  })
  // First start: the bundled sample dataset, so there is something to explore.
  void import('../main/services/sample').then(({ ensureSampleDataset }) => ensureSampleDataset(workspace)).catch(() => undefined)
  createWindow()
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow()
  })
})

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit()
})

app.on('before-quit', () => {
  void dsd.close()
})
