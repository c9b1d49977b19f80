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
    // Naive UI + ECharts make a large bundle; that is expected for a desktop app.
    chunkSizeWarningLimit: 4000,
    // No inline scripts or data: URLs for assets: the app runs under a strict CSP.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
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
        }
      : undefined,
  },
})
