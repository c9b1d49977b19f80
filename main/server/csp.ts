/**
 * The renderer's Content-Security-Policy, shared by browser mode (main/server) and the Electron
 * shell: only the app's own scripts (plus WebAssembly), inline styles (Naive UI injects them),
 * no plugins, no framing, no form posts; each transport adds where images and data may come from.
 */
export function contentSecurityPolicy(extra: { img?: string[]; connect?: string[] } = {}): string {
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    ["img-src 'self' data: blob:", ...(extra.img ?? [])].join(' '),
    "font-src 'self' data:",
    ["connect-src 'self'", ...(extra.connect ?? [])].join(' '),
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join('; ')
}
