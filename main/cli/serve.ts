import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startServer } from '../server'
import { workspaceRoot } from '../services/workspace-root'
import { projectRoot } from '../version'
import { CliError, intOption, parse } from './args'

export const summary = 'Browser mode: serve the app on 127.0.0.1 with a session token'
export const usage = `Usage: dsd serve [--port N] [--open] [--workspace DIR] [--sample]

Starts the HTTP + WebSocket bridge on 127.0.0.1 (port 0 = any free port; default 5174) and
prints the full URL with its session token. Every request needs the token. Ctrl+C stops it.
--sample imports the bundled 40-case hippocampus sample into the workspace on first start.`

const ROOT = projectRoot()

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      port: { type: 'string' },
      open: { type: 'boolean' },
      workspace: { type: 'string' },
      'static-dir': { type: 'string' },
      sample: { type: 'boolean' },
    },
    false,
  )
  const port = intOption('port', values.port, 5174)
  if (port < 0 || port > 65535) throw new CliError(`--port must be 0…65535, got ${port}`)
  const staticDir = values['static-dir'] ?? join(ROOT, 'dist', 'renderer')
  if (!existsSync(join(staticDir, 'index.html')) && !values['static-dir']) {
    // `npm ci` builds it (prepare); after `npm ci --ignore-scripts` build it now, once.
    console.log('The app is not built yet: building it (about a minute, once)…')
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), 'renderer'], { cwd: ROOT, stdio: 'inherit' })
    if (r.status !== 0) throw new CliError(`building the app failed (exit ${r.status}); run \`npm run build\` to see why.`)
  }
  if (!existsSync(join(staticDir, 'index.html'))) {
    console.error(`dsd serve: the renderer is not built (${staticDir}/index.html is missing); run \`npm run build\` first.`)
  }
  const workspace = workspaceRoot(values.workspace)
  if (values.sample) {
    const { ensureSampleDataset } = await import('../services/sample')
    const sample = await ensureSampleDataset(workspace)
    if (sample?.imported) console.log(`Imported the bundled sample dataset as "${sample.datasetId}" into ${workspace}.`)
  }
  const server = await startServer({ port, staticDir, workspace }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES') {
      const why = err.code === 'EADDRINUSE' ? 'is already in use (another DSD Studio, or another program)' : 'may not be used by this user'
      throw new CliError(
        `port ${port} on 127.0.0.1 ${why}. Choose another port with --port N (e.g. --port ${port + 1}, or --port 0 for any free port); with npm start: npm start -- --port N`,
      )
    }
    throw err
  })
  console.log(`DSD Studio is running in browser mode. Open this URL (it holds the session token):`)
  console.log(server.url)
  if (values.open) openBrowser(server.url)
  await new Promise<void>((resolve) => {
    const stop = () => {
      console.error('\nstopping…')
      void server.close().then(resolve)
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  return 0
}

function openBrowser(url: string): void {
  void import('node:child_process').then(({ spawn }) => {
    const cmd =
      process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open'
    const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url]
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true })
    child.on('error', () => console.error(`could not open a browser (${cmd}); open the URL by hand`))
    child.unref()
  })
}
