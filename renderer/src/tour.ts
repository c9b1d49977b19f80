/**
 * The guided tour's steps (components/GuidedTour.vue shows them) and where its highlight and
 * card go. Each step names its page and its control by CSS selectors, tried in order; the
 * page heading stands in when none is on the page (e.g. a page still being built).
 */

export interface TourStep {
  id: string
  page: string
  /** CSS selectors of the control, tried in order; the page heading when none matches. */
  targets: string[]
  title: string
  text: string
}

export const TOUR_STEPS: TourStep[] = [
  {
    id: 'import',
    page: '/datasets',
    targets: ['[data-tour="import"]'],
    title: '1 · Import',
    text: 'Import a folder of NIfTI scans with label maps (MSD, nnU-Net raw or image/label pairs). The bundled hippocampus sample is already imported, and Quick start above trains on it in one click.',
  },
  {
    id: 'audit',
    page: '/datasets',
    targets: ['[data-testid="datasets-table"] [data-testid^="audit-"]', '[data-testid="datasets-table"]'],
    title: '2 · Audit',
    text: 'The dataset doctor checks labels and geometry (spacing, orientation, empty or mismatched masks) before you train, and names each problem case.',
  },
  {
    id: 'split',
    page: '/splits',
    targets: ['[data-testid="split-create"]'],
    title: '3 · Split',
    text: 'Make a seeded k-fold split (or a paper preset). Runs record the split they were trained on, so results stay reproducible.',
  },
  {
    id: 'train',
    page: '/training',
    targets: ['[data-testid="quickstart-button"]', '[data-tour="train"]'],
    title: '4 · Train',
    text: 'Quick start trains a small network with dual self-distillation on the sample, shows live curves and scores the held-out cases. The form below trains your own data: folds × variants, checkpointed every epoch, pausable and resumable.',
  },
  {
    id: 'review',
    page: '/review',
    targets: ['[data-testid="review-set"]'],
    title: '5 · Review',
    text: 'Open a run\u2019s predictions next to the ground truth: per-case Dice, HD95 and NSD, the worst cases first, and the scans with their overlays.',
  },
  {
    id: 'export',
    page: '/export',
    targets: ['[data-testid="export-start"]'],
    title: '6 · Export',
    text: 'Export masks on the source geometry, metrics tables and a reproducibility bundle for a run or a whole cross-validation.',
  },
]

type Box = { top: number; left: number; width: number; height: number; bottom: number }

/** The step's control: the first selector that matches. */
function findTarget(step: TourStep): Element | null {
  for (const sel of step.targets) {
    const el = document.querySelector(sel)
    if (el) return el
  }
  return null
}

/**
 * Wait (up to `timeoutMs`) for the step's control to appear, scroll it into view and return it
 * (the page heading if it never appears); null once `stillWanted` turns false.
 */
export async function waitForTarget(step: TourStep, stillWanted: () => boolean, timeoutMs = 5000): Promise<Element | null> {
  const t0 = performance.now()
  let el = findTarget(step)
  while (!el && performance.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 100))
    if (!stillWanted()) return null
    el = findTarget(step)
  }
  el ??= document.querySelector('[data-testid="page-heading"]')
  el?.scrollIntoView({ block: 'center', inline: 'nearest' })
  return el
}

const PAD = 6
const CARD_WIDTH = 340
const CARD_HEIGHT = 200

/** The highlight ring around the control. */
export function highlightBox(r: Box | null): Record<string, string> {
  if (!r) return { display: 'none' }
  return { top: `${r.top - PAD}px`, left: `${r.left - PAD}px`, width: `${r.width + 2 * PAD}px`, height: `${r.height + 2 * PAD}px` }
}

/** The card below the control, or above it when there is no room below; centred without one. */
export function cardPlacement(r: Box | null): Record<string, string> {
  const width = `${CARD_WIDTH}px`
  if (!r) return { top: '30%', left: `calc(50% - ${CARD_WIDTH / 2}px)`, width }
  const left = `${Math.max(12, Math.min(r.left, window.innerWidth - CARD_WIDTH - 12))}px`
  const below = r.bottom + PAD + 12
  return below + CARD_HEIGHT < window.innerHeight
    ? { top: `${below}px`, left, width }
    : { top: `${Math.max(12, r.top - PAD - 12 - CARD_HEIGHT)}px`, left, width }
}
