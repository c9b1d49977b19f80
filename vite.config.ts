import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

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
  server: { host: '127.0.0.1' },
})
