import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/**
 * The workspace folder: `DSD_WORKSPACE`, else the OS user-data folder
 * (Linux `$XDG_DATA_HOME/dsd-studio`, macOS `~/Library/Application Support/DSD Studio`,
 * Windows `%APPDATA%\DSD Studio`) + `/workspace`.
 */
export function workspaceRoot(explicit?: string): string {
  if (explicit) return resolve(explicit)
  if (process.env.DSD_WORKSPACE) return resolve(process.env.DSD_WORKSPACE)
  const home = homedir()
  if (process.platform === 'darwin') {
    return join(home, 'Library', 'Application Support', 'DSD Studio', 'workspace')
  }
  if (process.platform === 'win32') {
    return join(process.env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'DSD Studio', 'workspace')
  }
  return join(process.env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'dsd-studio', 'workspace')
}
