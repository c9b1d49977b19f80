/** Where the browser-mode session token lives for the life of the tab. */
export const TOKEN_STORAGE_KEY = 'dsd_token'

/**
 * Reads the session token: from `?token=` in the address (then stores it in sessionStorage and
 * removes it from the address bar so it is not bookmarked or shared), else from sessionStorage.
 */
export function takeToken(): string | null {
  const url = new URL(window.location.href)
  const fromUrl = url.searchParams.get('token')
  if (fromUrl) {
    try {
      window.sessionStorage.setItem(TOKEN_STORAGE_KEY, fromUrl)
    } catch {
      // Storage may be disabled; the token still works for this page load.
    }
    url.searchParams.delete('token')
    const search = url.searchParams.toString()
    window.history.replaceState(
      window.history.state,
      '',
      url.pathname + (search ? `?${search}` : '') + url.hash,
    )
    return fromUrl
  }
  try {
    return window.sessionStorage.getItem(TOKEN_STORAGE_KEY)
  } catch {
    return null
  }
}
