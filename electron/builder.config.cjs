/**
 * electron-builder configuration: `npm run dist` (needs the network for Electron binaries).
 * Linux AppImage + deb, macOS dmg, Windows NSIS.
 * @type {import('electron-builder').Configuration}
 */
module.exports = {
  appId: 'org.dsdstudio.app',
  productName: 'DSD Studio',
  directories: { output: 'release', buildResources: 'resources/build' },
  files: [
    'dist/**/*',
    'main/**/*',
    'bin/**/*',
    'package.json',
    '!**/*.map',
    '!test/**',
  ],
  extraResources: [{ from: 'resources/sample', to: 'sample' }],
  asarUnpack: ['node_modules/webgpu/**', 'node_modules/@tensorflow/tfjs-backend-wasm/**'],
  // Electron fuses, flipped in the packaged binary: it cannot be used as a plain Node runtime
  // (ELECTRON_RUN_AS_NODE, NODE_OPTIONS, --inspect), cookies are encrypted at rest, and only
  // the integrity-checked app.asar is loaded. Training uses worker_threads, not child processes,
  // so RunAsNode is not needed.
  electronFuses: {
    runAsNode: false,
    enableCookieEncryption: true,
    enableNodeOptionsEnvironmentVariable: false,
    enableNodeCliInspectArguments: false,
    enableEmbeddedAsarIntegrityValidation: true,
    onlyLoadAppFromAsar: true,
    grantFileProtocolExtraPrivileges: false,
  },
  linux: { target: ['AppImage', 'deb'], category: 'Science' },
  deb: { depends: ['libvulkan1'] },
  mac: { target: ['dmg'], category: 'public.app-category.medical' },
  win: { target: ['nsis'] },
  nsis: { oneClick: false, allowToChangeInstallationDirectory: true },
}
