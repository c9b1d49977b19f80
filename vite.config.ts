import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

const devServer = process.env.DSD_SERVER

/**
 * The renderer build. One build serves every transport: Electron (custom protocol), the
 * browser-mode server (`dsd serve`) and the end-to-end tests. `base: './'` keeps every asset
 * URL relative, so the same files work at any mount point.
 */
export default defineConfig({
  root: fileURLToPath(new URL('./renderer', import.meta.url)),
  base: './',
  plugins: [vue()],
  build: {
    outDir: fileURLToPath(new URL('./dist/renderer', import.meta.url)),
    emptyOutDir: true,
    // Naive UI + ECharts make a large bundle, and the viewer's lazily loaded chunk (Cornerstone3D
    // with vtk.js, ~4.5 MB) is larger still; expected for a desktop app.
    chunkSizeWarningLimit: 5000,
    // No inline scripts or data: URLs for assets: the app runs under a strict CSP.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  // Cornerstone3D's recipe: module workers (its tools' compute worker is emitted as its own file,
  // and never started by the viewer: no statistics or contours). NIfTI is decoded in main, so no
  // dicom-image-loader, WASM or SharedArrayBuffer is involved (docs/ui.md, "Review").
  worker: { format: 'es' },
  // `DSD_SERVER=http://127.0.0.1:PORT npx vite` develops against a running `dsd serve`
  // (open the dev page with that server's ?token=). The proxy drops the Origin header,
  // which the server would otherwise refuse as a foreign origin.
  server: {
    host: '127.0.0.1',
    proxy: devServer
      ? {
          '/api': {
            target: devServer,
            changeOrigin: true,
            ws: true,
            configure: (proxy) => {
              proxy.on('proxyReq', (req) => req.removeHeader('origin'))
              proxy.on('proxyReqWs', (req) => req.removeHeader('origin'))
            },
          },
          // The viewer's volumes (GET /volume/…, token in the X-DSD-Token header).
          '/volume': { target: devServer, changeOrigin: true },
        }
      : undefined,
  },
})
