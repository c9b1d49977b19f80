import { defineStore } from 'pinia'
import { ref } from 'vue'
import { loadState, saveState } from '../persist'

/**
 * The guided tour's state: shown on the first start, until it is dismissed (closed or finished);
 * the dismissal is kept across restarts (persist.ts, `dsd.tour`). The About page reopens it.
 */
export const useTourStore = defineStore('tour', () => {
  const saved = loadState<{ dismissed: boolean }>('tour', { dismissed: false })
  const open = ref(!saved.dismissed)
  const step = ref(0)

  /** Show the tour from its first step. */
  function start(): void {
    step.value = 0
    open.value = true
  }

  /** Close it (skip or finish); it stays closed after a reload. */
  function dismiss(): void {
    open.value = false
    saveState('tour', { dismissed: true })
  }

  return { open, step, start, dismiss }
})
