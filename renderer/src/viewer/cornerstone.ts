/**
 * Cornerstone3D, initialised once for the app: core and tools, the tools the viewer uses, one
 * RenderingEngine, and the volume cache (volumes made from the data channel's voxels with
 * `createLocalVolume`, removed with their per-slice images when a case is closed). Nothing
 * here is reactive: vtk objects must never be wrapped in Vue proxies.
 */
import {
  cache,
  getRenderingEngine,
  init as coreInit,
  RenderingEngine,
  getShouldUseCPURendering,
  utilities,
  volumeLoader,
  type Types,
} from '@cornerstonejs/core'
import {
  addTool,
  CrosshairsTool,
  init as toolsInit,
  PanTool,
  StackScrollTool,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools'
import type { DecodedVolume } from './volume-format'

export const ENGINE_ID = 'dsd-review'

/** Why the viewer cannot run here (null when it can). */
export class ViewerUnavailable extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ViewerUnavailable'
  }
}

const WEBGL2_HELP =
  'The case viewer needs WebGL2 (3D textures), and this window has none: the GPU is blocked, ' +
  'disabled or missing. Update the graphics driver or enable hardware acceleration; on a ' +
  'machine without a GPU start Chromium / the app with --use-angle=swiftshader ' +
  '--enable-unsafe-swiftshader for software rendering. The About page shows what the window reports.'

/** WebGL2 in this page, checked directly (Cornerstone's own probe falls back to CPU silently). */
export function webgl2Problem(): string | null {
  try {
    const canvas = document.createElement('canvas')
    const gl = canvas.getContext('webgl2')
    if (!gl) return WEBGL2_HELP
    gl.getExtension('WEBGL_lose_context')?.loseContext()
    return null
  } catch (err) {
    return `${WEBGL2_HELP} (${(err as Error).message})`
  }
}

let initialised: Promise<void> | null = null

/** Initialise Cornerstone once (guarded for hot reloads); rejects with ViewerUnavailable. */
export function initCornerstone(): Promise<void> {
  const g = globalThis as { __dsdCornerstone?: Promise<void> }
  initialised ??= g.__dsdCornerstone ??= (async () => {
    const problem = webgl2Problem()
    if (problem) throw new ViewerUnavailable(problem)
    // One context is enough: every volume viewport shares context 0 of the pool.
    coreInit({ rendering: { webGlContextCount: 1 } } as Parameters<typeof coreInit>[0])
    if (getShouldUseCPURendering()) throw new ViewerUnavailable(WEBGL2_HELP)
    toolsInit()
    for (const tool of [CrosshairsTool, PanTool, ZoomTool, StackScrollTool, WindowLevelTool]) addTool(tool)
  })()
  initialised.catch(() => {
    initialised = null
    g.__dsdCornerstone = undefined
  })
  return initialised
}

/** The app's one rendering engine. */
export function engine(): RenderingEngine {
  return (getRenderingEngine(ENGINE_ID) as RenderingEngine | undefined) ?? new RenderingEngine(ENGINE_ID)
}

/** Create (or return) a cache volume from decoded voxels. */
export function createVolume(volumeId: string, v: DecodedVolume, frameOfReferenceUID: string): Types.IImageVolume {
  const existing = cache.getVolume(volumeId)
  if (existing) return existing
  const h = v.header
  const bits = h.dtype === 'uint8' ? 8 : h.dtype === 'float32' ? 32 : 16
  const [wl, wh] = h.kind === 'image' ? [h.p1, h.p99] : [0, Math.max(1, h.max)]
  const metadata = {
    BitsAllocated: bits,
    BitsStored: bits,
    SamplesPerPixel: 1,
    HighBit: bits - 1,
    PhotometricInterpretation: 'MONOCHROME2',
    PixelRepresentation: h.dtype === 'int16' || h.dtype === 'float32' ? 1 : 0,
    Modality: h.kind === 'image' ? 'MR' : 'SEG',
    ImageOrientationPatient: h.direction.slice(0, 6),
    PixelSpacing: [h.spacing[1], h.spacing[0]],
    FrameOfReferenceUID: frameOfReferenceUID,
    Columns: h.dims[0],
    Rows: h.dims[1],
    voiLut: [{ windowCenter: (wl + wh) / 2, windowWidth: Math.max(1e-6, wh - wl) }],
    VOILUTFunction: 'LINEAR',
  }
  const opts = {
    metadata,
    dimensions: h.dims as Types.Point3,
    spacing: h.spacing as Types.Point3,
    origin: h.origin as Types.Point3,
    direction: h.direction as unknown as Types.Mat3,
    scalarData: v.data,
  }
  const vol =
    h.kind === 'image'
      ? volumeLoader.createLocalVolume(volumeId, opts)
      : volumeLoader.createLocalLabelmapVolume(opts, volumeId)
  fixSlicePositions(vol, frameOfReferenceUID)
  return vol
}

/**
 * `createLocalVolume` gives every slice image the volume's origin as its position, so
 * `getClosestImageId` (the current slice, annotations) finds none; record the true position
 * of slice k: origin + k · spacing_k · direction_k.
 */
function fixSlicePositions(vol: Types.IImageVolume, frameOfReferenceUID: string): void {
  const d = vol.direction
  const [sx, sy, sz] = vol.spacing
  vol.imageIds.forEach((imageId, k) => {
    utilities.genericMetadataProvider.add(imageId, {
      type: 'imagePlaneModule',
      metadata: {
        frameOfReferenceUID,
        rows: vol.dimensions[1],
        columns: vol.dimensions[0],
        imageOrientationPatient: [d[0], d[1], d[2], d[3], d[4], d[5]],
        rowCosines: [d[0], d[1], d[2]],
        columnCosines: [d[3], d[4], d[5]],
        imagePositionPatient: [0, 1, 2].map((r) => vol.origin[r] + k * sz * d[6 + r]),
        pixelSpacing: [sy, sx],
        rowPixelSpacing: sy,
        columnPixelSpacing: sx,
        sliceThickness: sz,
      },
    })
  })
}

/**
 * A labelmap volume on a block of another volume's grid (`offset` voxels in, `dims` in size),
 * from voxels computed in the page.
 */
export function createDerivedLabelmap(
  volumeId: string,
  like: Types.IImageVolume,
  data: Uint8Array,
  offset: [number, number, number],
  dims: [number, number, number],
): Types.IImageVolume {
  const existing = cache.getVolume(volumeId)
  if (existing) return existing
  const d = like.direction
  const origin = [0, 1, 2].map(
    (r) => like.origin[r] + offset[0] * like.spacing[0] * d[r] + offset[1] * like.spacing[1] * d[3 + r] + offset[2] * like.spacing[2] * d[6 + r],
  ) as Types.Point3
  const vol = volumeLoader.createLocalLabelmapVolume(
    {
      metadata: { ...(like.metadata as object), Modality: 'SEG', Columns: dims[0], Rows: dims[1] } as Types.Metadata,
      dimensions: dims,
      spacing: like.spacing,
      origin,
      direction: like.direction,
      scalarData: data,
    },
    volumeId,
  )
  fixSlicePositions(vol, (like.metadata as { FrameOfReferenceUID: string }).FrameOfReferenceUID)
  return vol
}

/** Remove a volume and the per-slice images `createLocalVolume` cached with it. */
export function removeVolume(volumeId: string): void {
  const v = cache.getVolume(volumeId)
  if (!v) return
  const imageIds = [...(v.imageIds ?? [])]
  cache.removeVolumeLoadObject(volumeId)
  for (const id of imageIds) {
    if (cache.getImageLoadObject(id) || cache.getImage(id)) cache.removeImageLoadObject(id, { force: true })
  }
}

/** Bytes held by Cornerstone's cache (the memory check reads this). */
export function cacheBytes(): number {
  return cache.getCacheSize()
}
