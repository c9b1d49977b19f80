/** What this page (the renderer itself) can do for the viewer and for in-page compute. */
export interface RendererCapabilities {
  webgl2: {
    available: boolean
    /** Unmasked renderer string when the browser allows it, else the masked one. */
    renderer: string | null
    vendor: string | null
    version: string | null
    maxTextureSize: number | null
    max3dTextureSize: number | null
    /** True when the renderer string names a software rasteriser (SwiftShader, llvmpipe). */
    software: boolean
    reason: string
  }
  webgpu: {
    /** `navigator.gpu` exists in this page. */
    api: boolean
    /** An adapter was granted (null when the API is missing). */
    adapter: boolean | null
    description: string
  }
  userAgent: string
  devicePixelRatio: number
  hardwareConcurrency: number | null
}

const SOFTWARE = /swiftshader|llvmpipe|software|lavapipe/i

function probeWebgl2(): RendererCapabilities['webgl2'] {
  const canvas = document.createElement('canvas')
  let gl: WebGL2RenderingContext | null = null
  try {
    gl = canvas.getContext('webgl2')
  } catch (err) {
    return none(`getContext('webgl2') threw: ${(err as Error).message}`)
  }
  if (!gl) {
    return none(
      "getContext('webgl2') returned null: the GPU is blocked or disabled; the 3D viewer needs " +
        'WebGL2 (run Chromium with --use-angle=swiftshader --enable-unsafe-swiftshader for a ' +
        'software fallback)',
    )
  }
  const debug = gl.getExtension('WEBGL_debug_renderer_info')
  const renderer = String(
    debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER),
  )
  const vendor = String(
    debug ? gl.getParameter(debug.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR),
  )
  const result = {
    available: true,
    renderer,
    vendor,
    version: String(gl.getParameter(gl.VERSION)),
    maxTextureSize: Number(gl.getParameter(gl.MAX_TEXTURE_SIZE)),
    max3dTextureSize: Number(gl.getParameter(gl.MAX_3D_TEXTURE_SIZE)),
    software: SOFTWARE.test(renderer),
    reason: debug
      ? 'WebGL2 context created'
      : 'WebGL2 context created (the unmasked renderer string is not exposed)',
  }
  gl.getExtension('WEBGL_lose_context')?.loseContext()
  return result
}

function none(reason: string): RendererCapabilities['webgl2'] {
  return {
    available: false,
    renderer: null,
    vendor: null,
    version: null,
    maxTextureSize: null,
    max3dTextureSize: null,
    software: false,
    reason,
  }
}

interface GpuLike {
  requestAdapter(): Promise<{
    info?: { vendor?: string; architecture?: string; description?: string }
  } | null>
}

async function probeWebgpu(): Promise<RendererCapabilities['webgpu']> {
  const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu
  if (!gpu) {
    return { api: false, adapter: null, description: 'navigator.gpu is not defined in this page' }
  }
  try {
    const adapter = await Promise.race([
      gpu.requestAdapter(),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000)),
    ])
    if (!adapter) {
      return {
        api: true,
        adapter: false,
        description: 'navigator.gpu exists but no adapter was granted',
      }
    }
    const info = adapter.info
    const name = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ')
    return { api: true, adapter: true, description: name || 'adapter granted' }
  } catch (err) {
    return {
      api: true,
      adapter: false,
      description: `requestAdapter failed: ${(err as Error).message}`,
    }
  }
}

/** Probes WebGL2 and WebGPU in this page (runs once; cheap). */
export async function probeCapabilities(): Promise<RendererCapabilities> {
  return {
    webgl2: probeWebgl2(),
    webgpu: await probeWebgpu(),
    userAgent: navigator.userAgent,
    devicePixelRatio: window.devicePixelRatio,
    hardwareConcurrency: navigator.hardwareConcurrency ?? null,
  }
}
