/**
 * The case viewer: axial, sagittal and coronal ORTHOGRAPHIC viewports of the image, with the
 * ground truth as an outline and the prediction as a filled labelmap (or the false-positive /
 * false-negative map), per-label visibility and opacity, window/level presets, scroll, zoom,
 * pan and linked crosshairs. Two columns compare two prediction sets on the same case with
 * synchronised cameras (slices, zoom, pan) and window.
 *
 * A plain class, never reactive: the Vue page keeps it in a plain variable and passes plain
 * settings in. Volumes are fetched through the transport's data channel and created in
 * Cornerstone's cache; a case switch removes what the new case does not use.
 */
import { Enums as csEnums, cache, setVolumesForViewports, type Types } from '@cornerstonejs/core'
import {
  CrosshairsTool,
  Enums as toolEnums,
  PanTool,
  segmentation,
  StackScrollTool,
  SynchronizerManager,
  synchronizers,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools'
import { createDerivedLabelmap, createVolume, engine, ENGINE_ID, removeVolume } from './cornerstone'
import { errorMap, gridOrientation, type LabelBlock } from './grid'
import { decodeVolume, type DecodedVolume } from './volume-format'

import {
  DEFAULT_OPACITY,
  ERROR_COLORS,
  ORIENTATIONS,
  WINDOWS,
  type CaseSpec,
  type DisplaySettings,
  type Orientation,
  type WindowPreset,
} from './settings'

export * from './settings'
export { errorMap, gridOrientation, type LabelBlock } from './grid'
export { cacheBytes, initCornerstone, ViewerUnavailable } from './cornerstone'


type RepresentationInput = Parameters<typeof segmentation.addLabelmapRepresentationToViewportMap>[0][string][number]
const Labelmap = toolEnums.SegmentationRepresentations.Labelmap
// No ":" in ids: Cornerstone reads "scheme:" ids as loadable image ids (and would fetch them).
const volumeIdOf = (path: string) => `dsdv_${path}`

/** One viewport: its element, orientation and column. */
export interface Pane {
  id: string
  element: HTMLDivElement
  orientation: Orientation
  /** 0 = the first prediction set, 1 = the one it is compared with. */
  column: number
}

interface Loaded {
  image: Types.IImageVolume
  gt: Types.IImageVolume | null
  preds: Types.IImageVolume[]
  errors: (Types.IImageVolume | null)[]
}

export class ReviewViewer {
  readonly panes: Pane[]
  private readonly fetchVolume: (path: string) => Promise<ArrayBuffer>
  private toolGroupIds: string[] = []
  private syncIds: string[] = []
  private observer: ResizeObserver | null = null
  private segIds = new Set<string>()
  private lutIds: number[] = []
  private volumes = new Set<string>()
  private loaded: Loaded | null = null
  private spec: CaseSpec | null = null
  private settings: DisplaySettings | null = null
  private imageHeader: DecodedVolume['header'] | null = null
  /** Headers of the loaded images and voxels of the loaded label maps (views, not copies). */
  private headers = new Map<string, DecodedVolume['header']>()
  private labelData = new Map<string, LabelBlock>()
  private destroyed = false
  /** Incremented by every IMAGE_RENDERED (the tests wait on it). */
  renders = 0
  private readonly uid = Math.random().toString(36).slice(2, 8)

  constructor(panes: Pane[], fetchVolume: (path: string) => Promise<ArrayBuffer>) {
    this.panes = panes
    this.fetchVolume = fetchVolume
  }

  private get columns(): number {
    return Math.max(...this.panes.map((p) => p.column)) + 1
  }

  /** Enable the viewports, tools and synchronisers. The elements must have a size. */
  mount(): void {
    const eng = engine()
    for (const p of this.panes) {
      eng.enableElement({
        viewportId: p.id,
        type: csEnums.ViewportType.ORTHOGRAPHIC,
        element: p.element,
        defaultOptions: {
          orientation: csEnums.OrientationAxis[p.orientation.toUpperCase() as 'AXIAL'],
          background: [0, 0, 0] as Types.Point3,
        },
      })
      p.element.addEventListener(csEnums.Events.IMAGE_RENDERED, this.onRendered)
      // The right button zooms: no context menu over the image.
      p.element.addEventListener('contextmenu', preventDefault)
    }
    for (let c = 0; c < this.columns; c++) {
      const id = `dsd-review-${this.uid}-${c}`
      const group = ToolGroupManager.createToolGroup(id)!
      this.toolGroupIds.push(id)
      for (const t of [PanTool, ZoomTool, StackScrollTool, WindowLevelTool]) group.addTool(t.toolName)
      // Neutral crosshair lines: label colours (red, green, …) stay unambiguous.
      group.addTool(CrosshairsTool.toolName, {
        getReferenceLineColor: () => 'rgba(255, 255, 255, 0.55)',
        // (both must be true for a click to move the crosshairs: CrosshairsTool._jump)
        getReferenceLineControllable: () => true,
        getReferenceLineDraggableRotatable: () => true,
        getReferenceLineSlabThicknessControlsOn: () => false,
      })
      for (const p of this.panes.filter((x) => x.column === c)) group.addViewport(p.id, ENGINE_ID)
      const { MouseBindings, KeyboardBindings } = toolEnums
      group.setToolActive(CrosshairsTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] })
      group.setToolActive(WindowLevelTool.toolName, {
        bindings: [{ mouseButton: MouseBindings.Primary, modifierKey: KeyboardBindings.Shift }],
      })
      group.setToolActive(PanTool.toolName, {
        bindings: [
          { mouseButton: MouseBindings.Auxiliary },
          { mouseButton: MouseBindings.Primary, modifierKey: KeyboardBindings.Ctrl },
        ],
      })
      group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
      group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] })
    }
    if (this.columns > 1) {
      // Same orientation in both columns: one camera (slice, zoom, pan); one window everywhere.
      for (const o of ORIENTATIONS) {
        const id = `dsd-cam-${this.uid}-${o}`
        const sync = synchronizers.createCameraPositionSynchronizer(id)
        for (const p of this.panes.filter((x) => x.orientation === o)) sync.add({ renderingEngineId: ENGINE_ID, viewportId: p.id })
        this.syncIds.push(id)
      }
      const voiId = `dsd-voi-${this.uid}`
      const voi = synchronizers.createVOISynchronizer(voiId, { syncInvertState: false, syncColormap: false })
      for (const p of this.panes) voi.add({ renderingEngineId: ENGINE_ID, viewportId: p.id })
      this.syncIds.push(voiId)
    }
    this.observer = new ResizeObserver(() => {
      if (!this.destroyed) engine().resize(true, true)
    })
    for (const p of this.panes) this.observer.observe(p.element)
  }

  private paneRenders = new Map<string, number>()
  private onRendered = (evt: Event) => {
    this.renders++
    const p = this.panes.find((x) => x.element === evt.currentTarget)
    if (p) this.paneRenders.set(p.id, (this.paneRenders.get(p.id) ?? 0) + 1)
  }

  /** Resolves once every pane has drawn after this call (or after `timeoutMs`). */
  async rendered(timeoutMs = 10_000): Promise<boolean> {
    const start = new Map(this.panes.map((p) => [p.id, this.paneRenders.get(p.id) ?? 0]))
    engine().renderViewports(this.panes.map((p) => p.id))
    const t0 = performance.now()
    while (performance.now() - t0 < timeoutMs) {
      if (this.destroyed) return false
      if (this.panes.every((p) => (this.paneRenders.get(p.id) ?? 0) > start.get(p.id)!)) return true
      await new Promise((r) => requestAnimationFrame(() => r(null)))
    }
    return false
  }

  private viewport(id: string): Types.IVolumeViewport {
    return engine().getViewport(id) as Types.IVolumeViewport
  }

  /** Fetch and decode the volumes of a case that are not loaded yet. */
  private async fetchAll(paths: string[]): Promise<Map<string, DecodedVolume>> {
    const missing = [...new Set(paths)].filter((p) => !cache.getVolume(volumeIdOf(p)))
    const out = new Map<string, DecodedVolume>()
    await Promise.all(
      missing.map(async (p) => {
        out.set(p, decodeVolume(await this.fetchVolume(p), p))
      }),
    )
    return out
  }

  /** Milliseconds of the steps of the last `show`, and the frames drawn (the benchmark reads them). */
  timings: Record<string, number> = {}

  /** Show a case (or another channel / prediction set of it) with these settings. */
  async show(spec: CaseSpec, settings: DisplaySettings): Promise<void> {
    const t = { start: performance.now(), last: performance.now() }
    const timings: Record<string, number> = {}
    const renders0 = this.renders
    const lap = (name: string) => {
      const now = performance.now()
      timings[name] = Math.round(now - t.last)
      t.last = now
    }
    const paths = [spec.image, ...(spec.groundTruth ? [spec.groundTruth] : []), ...spec.predictions]
    const decoded = await this.fetchAll(paths)
    lap('fetch')
    if (this.destroyed) return
    const frameOfReference = `dsd-case:${spec.key}`
    const previous = this.volumes
    const sameCase = this.spec?.key === spec.key
    // Overlays of the previous case go first (they refer to its volumes).
    this.removeSegmentations()
    const want = new Set<string>()
    const vol = (p: string) => {
      want.add(volumeIdOf(p))
      const d = decoded.get(p)
      if (d && d.header.kind !== 'image') {
        this.labelData.set(p, { data: d.data, dims: d.header.dims, offset: d.header.offset })
      }
      return d ? createVolume(volumeIdOf(p), d, frameOfReference) : cache.getVolume(volumeIdOf(p))!
    }
    const image = vol(spec.image)
    const imageHeader = decoded.get(spec.image)?.header ?? this.headers.get(spec.image)
    if (!imageHeader) throw new Error(`no header for ${spec.image}`)
    this.headers.set(spec.image, imageHeader)
    this.imageHeader = imageHeader
    const gt = spec.groundTruth ? vol(spec.groundTruth) : null
    const preds = spec.predictions.map(vol)
    lap('volumes')
    this.loaded = { image, gt, preds, errors: preds.map(() => null) }
    this.spec = spec
    this.volumes = want
    // The FP/FN maps are made when first shown (a voxel pass and a texture each).
    if (settings.errors) this.buildErrorMaps()
    lap('errorMaps')
    const eng = engine()
    await setVolumesForViewports(eng, [{ volumeId: image.volumeId }], this.panes.map((p) => p.id))
    lap('setVolumes')
    for (const id of previous) if (!this.volumes.has(id)) removeVolume(id)
    for (const p of [...this.labelData.keys(), ...this.headers.keys()]) {
      if (!this.volumes.has(volumeIdOf(p))) {
        this.labelData.delete(p)
        this.headers.delete(p)
      }
    }
    lap('release')
    this.addSegmentations(spec)
    // A new case: views along its voxel grid (see gridOrientation), camera reset.
    if (!sameCase) this.orient()
    this.apply(settings)
    lap('overlays')
    await this.rendered()
    lap('render')
    timings.total = Math.round(performance.now() - t.start)
    // Frames drawn while opening (three panes: three is the least).
    timings.renders = this.renders - renders0
    this.timings = timings
  }

  /** Create the FP/FN label map of each column (once per ground truth and prediction). */
  private buildErrorMaps(): boolean {
    const l = this.loaded
    const spec = this.spec
    if (!l || !spec || !l.gt || !spec.groundTruth) return false
    let added = false
    l.errors = l.preds.map((p, c) => {
      const id = `dsde_${spec.groundTruth}|${spec.predictions[c]}`
      this.volumes.add(id)
      const cached = cache.getVolume(id)
      if (cached) return cached
      const g = this.labelData.get(spec.groundTruth!)
      const q = this.labelData.get(spec.predictions[c])
      const gh = this.headers.get(spec.image)
      if (!g || !q || !gh) return null
      added = true
      const e = errorMap(g, q)
      return createDerivedLabelmap(id, l.image, e.data as Uint8Array, e.offset, e.dims)
    })
    return added || l.errors.some(Boolean)
  }

  private addSegmentations(spec: CaseSpec): void {
    const l = this.loaded!
    const segs: Parameters<typeof segmentation.addSegmentations>[0] = []
    const segments = Object.fromEntries(spec.labels.map((x) => [x.value, { label: x.name }]))
    const add = (id: string, volumeId: string, label: string, seg = segments) => {
      segs.push({ segmentationId: id, representation: { type: Labelmap, data: { volumeId } }, config: { label, segments: seg } })
      this.segIds.add(id)
    }
    // One segmentation per pane and role, on the same label map volume (no copy): Cornerstone
    // remounts a slice-rendered label map on every slice change and then redraws every view
    // showing that segmentation; per-pane ones keep a scroll to the scrolled view.
    for (const p of this.panes) {
      if (l.gt) add(this.segId('gt', p), l.gt.volumeId, 'Ground truth')
      add(this.segId('pred', p), l.preds[p.column].volumeId, 'Prediction')
      const e = l.errors[p.column]
      if (e) add(this.segId('err', p), e.volumeId, 'FP / FN', { 1: { label: 'false positive' }, 2: { label: 'false negative' }, 3: { label: 'other label' } })
    }
    segmentation.addSegmentations(segs)
    // Colour tables: one per role (label colours; the outline opaque, the fill per-label alpha).
    const max = Math.max(3, ...spec.labels.map((x) => x.value))
    const lut = (alpha: (v: number) => number): Types.ColorLUT => {
      const t: Types.ColorLUT = Array.from({ length: max + 1 }, () => [0, 0, 0, 0] as Types.Color)
      for (const x of spec.labels) t[x.value] = [...x.color, alpha(x.value)] as Types.Color
      return t
    }
    this.removeLuts()
    const gtLut = segmentation.config.color.addColorLUT(lut(() => 255))
    const predLut = segmentation.config.color.addColorLUT(lut(() => 255))
    const errAlpha = Math.round(255 * DEFAULT_OPACITY)
    const errLut = segmentation.config.color.addColorLUT([
      [0, 0, 0, 0],
      [...ERROR_COLORS.fp, errAlpha],
      [...ERROR_COLORS.fn, errAlpha],
      [...ERROR_COLORS.swap, errAlpha],
    ] as Types.ColorLUT)
    this.lutIds = [gtLut, predLut, errLut]
    const map: Record<string, RepresentationInput[]> = {}
    for (const p of this.panes) {
      const reps: RepresentationInput[] = []
      if (l.errors[p.column]) reps.push({ segmentationId: this.segId('err', p), type: Labelmap, config: { colorLUTOrIndex: errLut, useSliceRendering: true } })
      reps.push({ segmentationId: this.segId('pred', p), type: Labelmap, config: { colorLUTOrIndex: predLut, useSliceRendering: true } })
      // Last, so the outline is drawn over the fills.
      if (l.gt) reps.push({ segmentationId: this.segId('gt', p), type: Labelmap, config: { colorLUTOrIndex: gtLut, useSliceRendering: true } })
      map[p.id] = reps
    }
    segmentation.addLabelmapRepresentationToViewportMap(map)
    // Both the active and the inactive style keys (one segmentation per viewport is "active").
    const { setStyle } = segmentation.config.style
    for (const p of this.panes) {
      if (!l.gt) break
      setStyle(
        { type: Labelmap, segmentationId: this.segId('gt', p) },
        {
          renderFill: false,
          renderFillInactive: false,
          renderOutline: true,
          renderOutlineInactive: true,
          outlineWidth: 2,
          outlineWidthInactive: 2,
          outlineOpacity: 1,
          outlineOpacityInactive: 1,
          activeSegmentOutlineWidthDelta: 0,
        },
      )
    }
    const fill = {
      renderFill: true,
      renderFillInactive: true,
      fillAlpha: 1,
      fillAlphaInactive: 1,
      renderOutline: false,
      renderOutlineInactive: false,
    }
    for (const p of this.panes) {
      setStyle({ type: Labelmap, segmentationId: this.segId('pred', p) }, fill)
      if (l.errors[p.column]) setStyle({ type: Labelmap, segmentationId: this.segId('err', p) }, fill)
    }
    for (const p of this.panes) segmentation.config.style.setRenderInactiveSegmentations(p.id, true)
  }

  /** The segmentation of a role in a pane (each pane has its own; see addSegmentations). */
  private segId(role: 'gt' | 'pred' | 'err', pane: Pane): string {
    const s = this.spec!
    const c = pane.column
    if (role === 'gt') return `seg:gt:${s.groundTruth}:${pane.id}`
    if (role === 'pred') return `seg:pred:${s.predictions[c]}:${pane.id}`
    return `seg:err:${s.groundTruth}|${s.predictions[c]}:${pane.id}`
  }

  private removeSegmentations(): void {
    for (const p of this.panes) segmentation.removeSegmentationRepresentations(p.id, {}, true)
    for (const id of this.segIds) segmentation.removeSegmentation(id)
    this.segIds.clear()
  }

  private removeLuts(): void {
    for (const i of this.lutIds) segmentation.state.removeColorLUT(i)
    this.lutIds = []
  }

  /** Apply display settings (visibility, per-label opacity, window) and render. */
  apply(settings: DisplaySettings): void {
    this.settings = settings
    const l = this.loaded
    const spec = this.spec
    if (!l || !spec) return
    if (settings.errors && l.gt && l.errors.every((e) => e === null) && this.buildErrorMaps()) {
      // First time the FP/FN map is asked for: rebuild the overlays with it (under the outline).
      this.removeSegmentations()
      this.addSegmentations(spec)
    }
    const { visibility } = segmentation.config
    const hidden = new Set(settings.hiddenLabels)
    for (const p of this.panes) {
      // Per-label fill opacity is the prediction colour table's alpha (one table, edited in place).
      const predId = this.segId('pred', p)
      for (const x of spec.labels) {
        const a = Math.round(255 * Math.min(1, Math.max(0, settings.opacity[x.value] ?? DEFAULT_OPACITY)))
        segmentation.config.color.setSegmentIndexColor(p.id, predId, x.value, [...x.color, a] as Types.Color)
      }
      const set = (role: 'gt' | 'pred' | 'err', on: boolean, perLabel: boolean) => {
        const segmentationId = this.segId(role, p)
        if (!this.segIds.has(segmentationId)) return
        // Turning a representation on shows all its segments; hide labels after it, and only
        // when it is on (hiding a segment of a hidden representation would show it again).
        visibility.setSegmentationRepresentationVisibility(p.id, { segmentationId, type: Labelmap }, on)
        if (on && perLabel) {
          for (const x of spec.labels) {
            visibility.setSegmentIndexVisibility(p.id, { segmentationId, type: Labelmap }, x.value, !hidden.has(x.value))
          }
        }
      }
      set('gt', settings.groundTruth, true)
      set('pred', settings.prediction && !settings.errors, true)
      set('err', settings.errors, false)
      this.applyWindow(p.id, settings.window)
    }
    engine().renderViewports(this.panes.map((p) => p.id))
  }

  /** The voxel range shown for a preset. */
  windowRange(preset: WindowPreset): { lower: number; upper: number } {
    const h = this.imageHeader
    if (preset === 'ct-soft' || preset === 'ct-bone') {
      const w = WINDOWS[preset]
      return { lower: w.level - w.width / 2, upper: w.level + w.width / 2 }
    }
    if (!h) return { lower: 0, upper: 1 }
    if (preset === 'full' || h.p99 <= h.p1) return { lower: h.min, upper: Math.max(h.max, h.min + 1e-6) }
    return { lower: h.p1, upper: h.p99 }
  }

  private applyWindow(viewportId: string, preset: WindowPreset): void {
    const l = this.loaded
    if (!l) return
    this.viewport(viewportId).setProperties({ voiRange: this.windowRange(preset) }, l.image.volumeId, true)
  }

  /**
   * Each pane along the voxel grid (gridOrientation), zoom and pan reset. The vectors become the
   * viewport's `orientation` property, which every resetCamera re-applies: `setOrientation` with
   * vectors (5.14) turns the camera once but leaves the property at the standard view, so the
   * next reset (a resize, the crosshairs, Reset view) would snap back to it.
   */
  private orient(): void {
    const h = this.imageHeader
    for (const p of this.panes) {
      const vp = this.viewport(p.id)
      if (h) {
        const props = (vp as unknown as { viewportProperties?: { orientation?: unknown } }).viewportProperties
        if (props) props.orientation = gridOrientation(h.direction, p.orientation)
      }
      vp.resetCamera()
    }
  }

  /** Reset zoom, pan, slices and the crosshairs. */
  resetView(): void {
    this.orient()
    for (const id of this.toolGroupIds) {
      const tool = ToolGroupManager.getToolGroup(id)?.getToolInstance(CrosshairsTool.toolName) as CrosshairsTool | undefined
      tool?.resetCrosshairs?.()
    }
    if (this.settings) this.apply(this.settings)
  }

  /** Move the crosshairs (and so the other views) to a world point (LPS, mm). */
  jumpTo(world: Types.Point3): void {
    for (const id of this.toolGroupIds) {
      const tool = ToolGroupManager.getToolGroup(id)?.getToolInstance(CrosshairsTool.toolName) as CrosshairsTool | undefined
      tool?.setToolCenter(world)
    }
  }

  /** What the tests and the status line read (plain numbers, no vtk objects). */
  probe(paneId: string) {
    const vp = this.viewport(paneId)
    const cam = vp.getCamera()
    return {
      sliceIndex: vp.getSliceIndex(),
      slices: vp.getNumberOfSlices(),
      focalPoint: [...(cam.focalPoint ?? [0, 0, 0])],
      parallelScale: cam.parallelScale ?? 0,
      viewPlaneNormal: [...(cam.viewPlaneNormal ?? [0, 0, 0])],
      viewUp: [...(cam.viewUp ?? [0, 0, 0])],
      voiRange: vp.getProperties()?.voiRange ?? null,
    }
  }

  worldToCanvas(paneId: string, world: Types.Point3): [number, number] {
    const p = this.viewport(paneId).worldToCanvas(world)
    return [p[0], p[1]]
  }

  /** Centre a pane on a world point (in its plane) and zoom by `factor` relative to the fit. */
  zoomAt(paneId: string, world: Types.Point3, factor: number): void {
    const vp = this.viewport(paneId)
    const cam = vp.getCamera()
    const fp = cam.focalPoint!
    const n = cam.viewPlaneNormal!
    const d = (world[0] - fp[0]) * n[0] + (world[1] - fp[1]) * n[1] + (world[2] - fp[2]) * n[2]
    const focalPoint = [0, 1, 2].map((r) => world[r] - d * n[r]) as Types.Point3
    const position = [0, 1, 2].map((r) => focalPoint[r] + cam.position![r] - fp[r]) as Types.Point3
    vp.setCamera({ focalPoint, position })
    vp.setZoom(factor)
    vp.render()
  }

  /** Scroll a pane by `delta` slices. */
  scroll(paneId: string, delta: number): void {
    this.viewport(paneId).scroll(delta)
  }

  /** Tear everything down: overlays, volumes, tool groups, synchronisers, viewports. */
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.observer?.disconnect()
    try {
      this.removeSegmentations()
    } catch (err) {
      console.warn('viewer: removing overlays failed', err)
    }
    this.removeLuts()
    for (const id of this.syncIds) SynchronizerManager.destroySynchronizer(id)
    for (const id of this.toolGroupIds) ToolGroupManager.destroyToolGroup(id)
    const eng = engine()
    for (const p of this.panes) {
      p.element.removeEventListener(csEnums.Events.IMAGE_RENDERED, this.onRendered)
      p.element.removeEventListener('contextmenu', preventDefault)
      eng.disableElement(p.id)
    }
    for (const id of this.volumes) removeVolume(id)
    this.volumes.clear()
    this.labelData.clear()
    this.headers.clear()
    this.loaded = null
  }
}

function preventDefault(e: Event): void {
  e.preventDefault()
}
