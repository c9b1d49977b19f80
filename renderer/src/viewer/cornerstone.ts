/**
 * Cornerstone3D, initialised once for the app: core and tools, the tools the viewer uses, one
 * RenderingEngine, and the volume cache (volumes made from the data channel's voxels the way
 * `createLocalVolume` makes them, removed with their per-slice images when a case is closed). Nothing
 * here is reactive: vtk objects must never be wrapped in Vue proxies.
 */
import {
  cache,
  Enums,
  getRenderingEngine,
  ImageVolume,
  init as coreInit,
  RenderingEngine,
  getShouldUseCPURendering,
  utilities,
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
  } as unknown as Types.Metadata
  return cacheLocalVolume(volumeId, {
    metadata,
    dims: h.dims,
    spacing: h.spacing,
    origin: h.origin,
    direction: h.direction,
    data: v.data,
    min: h.min,
    max: h.max,
    frameOfReferenceUID,
  })
}

type SliceData = DecodedVolume['data']

/**
 * What `volumeLoader.createLocalVolume` does (Cornerstone 5.14, loaders/volumeLoader.js), minus
 * its costs for a volume whose range is known: it caches one image per slice (a view on the
 * voxels, ids `${volumeId}_slice_k`) and an `ImageVolume` over them. Its
 * `createAndCacheLocalImage` walks every voxel of every slice for the slice's min/max (~0.6 s
 * for a 512²×300 CT on a loaded 2-core machine) and records each slice at the volume's origin
 * (so `getClosestImageId` finds none); here the slice images carry the volume's min/max (sent
 * in the header) and each its true position: origin + k · spacing_k · direction_k.
 */
function cacheLocalVolume(
  volumeId: string,
  o: {
    metadata: Types.Metadata
    dims: [number, number, number]
    spacing: [number, number, number]
    origin: [number, number, number]
    direction: number[]
    data: SliceData
    min: number
    max: number
    frameOfReferenceUID: string
  },
): Types.IImageVolume {
  const [nx, ny, nz] = o.dims
  const [sx, sy, sz] = o.spacing
  const d = o.direction
  const bytes = o.data.byteLength
  if (!cache.isCacheable(bytes)) {
    throw new Error(
      `The volume ${volumeId} (${(bytes / 2 ** 20).toFixed(0)} MB) does not fit in the viewer's cache; close other cases or raise the cache size`,
    )
  }
  const dataType = o.data.constructor.name
  const bitsAllocated = o.data.BYTES_PER_ELEMENT * 8
  const n = nx * ny
  const imageIds: string[] = []
  for (let k = 0; k < nz; k++) {
    const imageId = `${volumeId}_slice_${k}`
    imageIds.push(imageId)
    const scalarData = o.data.subarray(k * n, (k + 1) * n)
    // addRaw: the objects are new (add would deep-clone each one again).
    utilities.genericMetadataProvider.addRaw(imageId, {
      type: Enums.MetadataModules.IMAGE_PLANE,
      metadata: {
        frameOfReferenceUID: o.frameOfReferenceUID,
        rows: ny,
        columns: nx,
        imageOrientationPatient: d.slice(0, 6),
        rowCosines: d.slice(0, 3),
        columnCosines: d.slice(3, 6),
        imagePositionPatient: [0, 1, 2].map((r) => o.origin[r] + k * sz * d[6 + r]),
        pixelSpacing: [sy, sx],
        rowPixelSpacing: sy,
        columnPixelSpacing: sx,
        sliceThickness: sz,
      },
    })
    utilities.genericMetadataProvider.addRaw(imageId, {
      type: Enums.MetadataModules.IMAGE_PIXEL,
      metadata: {
        samplesPerPixel: 1,
        photometricInterpretation: 'MONOCHROME2',
        rows: ny,
        columns: nx,
        bitsAllocated,
        bitsStored: bitsAllocated,
        highBit: bitsAllocated - 1,
      },
    })
    const voxelManager = utilities.VoxelManager.createImageVoxelManager({
      width: nx,
      height: ny,
      numberOfComponents: 1,
      scalarData,
      id: imageId,
    })
    const image = {
      imageId,
      intercept: 0,
      slope: 1,
      windowCenter: 0,
      windowWidth: 0,
      color: false,
      numberOfComponents: 1,
      dataType,
      minPixelValue: o.min,
      maxPixelValue: o.max,
      rows: ny,
      columns: nx,
      height: ny,
      width: nx,
      getCanvas: undefined,
      rgba: false,
      columnPixelSpacing: sx,
      rowPixelSpacing: sy,
      FrameOfReferenceUID: o.frameOfReferenceUID,
      invert: false,
      getPixelData: () => voxelManager.getScalarData(),
      voxelManager,
      sizeInBytes: scalarData.byteLength,
    }
    cache.putImageSync(imageId, image as unknown as Types.IImage)
  }
  const volume = new ImageVolume({
    volumeId,
    metadata: o.metadata,
    dimensions: [nx, ny, nz],
    spacing: o.spacing,
    origin: o.origin,
    direction: d as unknown as Types.Mat3,
    imageIds,
    dataType,
  } as unknown as ConstructorParameters<typeof ImageVolume>[0])
  cache.putVolumeSync(volumeId, volume)
  return volume as unknown as Types.IImageVolume
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
  ) as [number, number, number]
  return cacheLocalVolume(volumeId, {
    metadata: { ...(like.metadata as object), Modality: 'SEG', Columns: dims[0], Rows: dims[1] } as Types.Metadata,
    dims,
    spacing: [...like.spacing] as [number, number, number],
    origin,
    direction: [...like.direction],
    data,
    min: 0,
    max: 3,
    frameOfReferenceUID: (like.metadata as { FrameOfReferenceUID: string }).FrameOfReferenceUID,
  })
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
