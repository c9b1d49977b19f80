import { defineStore } from 'pinia'
import { computed, ref, shallowRef, watch } from 'vue'
import type { MetricsTable, PredictionSetSummary, ReviewCase } from '../../../main/contract/review'
import { ApiError, toApiError, useApi } from '../api'
import { loadState, saveState } from '../persist'
import { DEFAULT_OPACITY, type DisplaySettings } from '../viewer/settings'

/** What the Review page keeps across restarts (localStorage `dsd.review`). */
export interface ReviewPrefs {
  setKey: string | null
  compareKey: string | null
  caseId: string | null
  channel: number
  /** 'all' or one label value. */
  label: number | 'all'
  outliersOnly: boolean
  search: string
  sortKey: string | null
  sortOrder: 'ascend' | 'descend' | false
  display: DisplaySettings
}

export const DEFAULT_PREFS: ReviewPrefs = {
  setKey: null,
  compareKey: null,
  caseId: null,
  channel: 0,
  label: 'all',
  outliersOnly: false,
  search: '',
  sortKey: null,
  sortOrder: false,
  display: {
    groundTruth: true,
    prediction: true,
    errors: false,
    hiddenLabels: [],
    opacity: {},
    window: 'auto',
  },
}

/** A set's metrics, or why there are none. */
export interface SetMetrics {
  table: MetricsTable | null
  error: ApiError | null
}

/** The Review page: prediction sets, their metric tables, the open case (one set or two). */
export const useReviewStore = defineStore('review', () => {
  const api = useApi()
  const saved = loadState<ReviewPrefs>('review', DEFAULT_PREFS)
  const prefs = ref<ReviewPrefs>({ ...saved, display: { ...DEFAULT_PREFS.display, ...saved.display } })
  watch(prefs, (p) => saveState('review', p), { deep: true })

  const sets = ref<PredictionSetSummary[]>([])
  const problems = ref<{ where: string; message: string }[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  const metrics = shallowRef<Record<string, SetMetrics>>({})
  /** The open case of the set and of the compared set. */
  const current = shallowRef<ReviewCase | null>(null)
  const compared = shallowRef<ReviewCase | null>(null)
  const caseError = ref<ApiError | null>(null)
  const caseLoading = ref(false)
  /** Case ids in the order the cohort table shows them (next / previous follow it). */
  const order = ref<string[]>([])

  const set = computed(() => sets.value.find((s) => s.key === prefs.value.setKey) ?? null)
  const compareSet = computed(() => sets.value.find((s) => s.key === prefs.value.compareKey) ?? null)
  /** Sets that can be compared with the chosen one: the same dataset and at least one shared case. */
  const comparable = computed(() => {
    const a = set.value
    if (!a) return []
    const ids = new Set(a.cases.map((c) => c.caseId))
    return sets.value.filter(
      (s) => s.key !== a.key && s.datasetId === a.datasetId && s.cases.some((c) => ids.has(c.caseId)),
    )
  })

  async function loadSets(): Promise<void> {
    loading.value = true
    try {
      const r = await api.invoke('predictions.list', {})
      sets.value = r.sets
      problems.value = r.problems
      loaded.value = true
      if (prefs.value.setKey && !set.value) prefs.value.setKey = null
      if (!prefs.value.setKey && r.sets.length) prefs.value.setKey = r.sets[0].key
      if (prefs.value.compareKey && !comparable.value.some((s) => s.key === prefs.value.compareKey)) {
        prefs.value.compareKey = null
      }
      await Promise.all([set.value, compareSet.value].filter(Boolean).map((s) => loadMetrics(s!)))
    } finally {
      loading.value = false
    }
  }

  async function loadMetrics(s: PredictionSetSummary): Promise<SetMetrics> {
    let entry: SetMetrics
    try {
      entry = { table: await api.invoke('metrics.get', { ref: s.ref }), error: null }
    } catch (err) {
      entry = { table: null, error: toApiError(err) }
    }
    metrics.value = { ...metrics.value, [s.key]: entry }
    return entry
  }

  async function selectSet(key: string): Promise<void> {
    prefs.value.setKey = key
    if (prefs.value.compareKey === key || !comparable.value.some((s) => s.key === prefs.value.compareKey)) {
      prefs.value.compareKey = null
    }
    if (set.value) await loadMetrics(set.value)
    const caseId = prefs.value.caseId
    if (caseId && set.value?.cases.some((c) => c.caseId === caseId)) await openCase(caseId)
    else closeCase()
  }

  async function selectCompare(key: string | null): Promise<void> {
    prefs.value.compareKey = key
    if (compareSet.value) await loadMetrics(compareSet.value)
    if (prefs.value.caseId && current.value) await openCase(prefs.value.caseId)
  }

  function closeCase(): void {
    current.value = null
    compared.value = null
    prefs.value.caseId = null
  }

  let opening = 0
  async function openCase(caseId: string): Promise<void> {
    const a = set.value
    if (!a) return
    const ticket = ++opening
    caseLoading.value = true
    caseError.value = null
    try {
      const b = compareSet.value
      const [ca, cb] = await Promise.all([
        api.invoke('review.case', { ref: a.ref, caseId }),
        b && b.cases.some((c) => c.caseId === caseId) ? api.invoke('review.case', { ref: b.ref, caseId }) : null,
      ])
      if (ticket !== opening) return
      current.value = ca
      compared.value = cb
      prefs.value.caseId = caseId
      if (prefs.value.channel >= ca.channels.length) prefs.value.channel = 0
    } catch (err) {
      if (ticket === opening) caseError.value = toApiError(err)
      throw err
    } finally {
      if (ticket === opening) caseLoading.value = false
    }
  }

  /** The next (+1) or previous (−1) case in the table's order. */
  async function step(delta: 1 | -1): Promise<void> {
    const ids = order.value
    if (!ids.length) return
    const at = prefs.value.caseId ? ids.indexOf(prefs.value.caseId) : -1
    const next = at < 0 ? (delta > 0 ? 0 : ids.length - 1) : Math.min(ids.length - 1, Math.max(0, at + delta))
    if (ids[next] !== prefs.value.caseId) await openCase(ids[next])
  }

  function opacityOf(label: number): number {
    return prefs.value.display.opacity[label] ?? DEFAULT_OPACITY
  }

  return {
    prefs,
    sets,
    problems,
    loaded,
    loading,
    metrics,
    current,
    compared,
    caseError,
    caseLoading,
    order,
    set,
    compareSet,
    comparable,
    loadSets,
    loadMetrics,
    selectSet,
    selectCompare,
    openCase,
    closeCase,
    step,
    opacityOf,
  }
})
