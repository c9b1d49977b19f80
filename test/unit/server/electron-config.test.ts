/**
 * The packaging config flips the Electron fuses that would let the shipped binary run as a
 * plain Node runtime or load unchecked code. (The permission handlers are exercised by the
 * Electron suite, test/electron, where an Electron binary exists.)
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../../helpers/shared'

const require = createRequire(import.meta.url)

describe('electron-builder config', () => {
  it('sets the security fuses', () => {
    const config = require(join(ROOT, 'electron', 'builder.config.cjs')) as { electronFuses?: Record<string, boolean>; asar?: boolean }
    expect(config.asar).not.toBe(false)
    expect(config.electronFuses).toMatchObject({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    })
  })
})
