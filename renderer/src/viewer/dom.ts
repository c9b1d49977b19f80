/** Small DOM helpers for the viewer's Vue components (kept in TS, where DOM types are in scope). */

/** The pane elements of the viewer, in layout order. */
export function paneElements(root: ParentNode): HTMLDivElement[] {
  return [...root.querySelectorAll<HTMLDivElement>('[data-pane]')]
}

export const now = (): number => performance.now()
export const nextFrame = (cb: () => void): number => requestAnimationFrame(cb)
export const cancelFrame = (id: number): void => cancelAnimationFrame(id)

/**
 * A keydown handler for next / previous case: N or PageDown → +1, P or PageUp → −1; ignored
 * while typing in a field or with a modifier held.
 */
export function caseStepKeys(step: (delta: 1 | -1) => void): (e: KeyboardEvent) => void {
  return (e) => {
    const t = e.target as HTMLElement | null
    if (e.altKey || e.ctrlKey || e.metaKey) return
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return
    if (e.key === 'n' || e.key === 'N' || e.key === 'PageDown') {
      e.preventDefault()
      step(1)
    } else if (e.key === 'p' || e.key === 'P' || e.key === 'PageUp') {
      e.preventDefault()
      step(-1)
    }
  }
}
