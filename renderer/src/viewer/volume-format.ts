/**
 * Decodes the data channel's volume format (see `ViewerVolumeHeader` in main/contract/review.ts):
 * `DSDV`, a uint32 header length, the JSON header, then the voxels (no copy: the typed array
 * is a view on the fetched buffer).
 */
import type { ViewerVolumeHeader } from '../../../main/contract/review'

export type VoxelData = Uint8Array | Int16Array | Uint16Array | Float32Array

export interface DecodedVolume {
  header: ViewerVolumeHeader
  data: VoxelData
}

const CTORS = {
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  float32: Float32Array,
} as const

export function decodeVolume(buffer: ArrayBuffer, what = 'volume'): DecodedVolume {
  const bytes = new Uint8Array(buffer)
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(0, 4)) !== 'DSDV') {
    throw new Error(`${what}: not a DSD volume (bad magic); the server sent something else`)
  }
  const len = new DataView(buffer).getUint32(4, true)
  if (8 + len > bytes.length) throw new Error(`${what}: the header runs past the end (${bytes.length} bytes)`)
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len))) as ViewerVolumeHeader
  if (header.format !== 'dsd-volume' || header.version !== 1) {
    throw new Error(`${what}: unknown volume format ${header.format} v${header.version}`)
  }
  const Ctor = CTORS[header.dtype]
  if (!Ctor) throw new Error(`${what}: unknown voxel type ${header.dtype}`)
  const [nx, ny, nz] = header.dims
  const n = nx * ny * nz
  const offset = 8 + len
  if (offset % Ctor.BYTES_PER_ELEMENT !== 0 || offset + n * Ctor.BYTES_PER_ELEMENT !== bytes.length) {
    throw new Error(
      `${what}: expected ${n} ${header.dtype} voxels after the header, got ${bytes.length - offset} bytes; the transfer was cut short`,
    )
  }
  return { header, data: new Ctor(buffer, offset, n) }
}
