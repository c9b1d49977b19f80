/**
 * The in-memory volume every reader produces and every writer accepts.
 *
 * Layout follows NIfTI: `shape = [nx, ny, nz]` in voxel index order (i, j, k) and the data
 * is i-fastest: index = ((c * nz + k) * ny + j) * nx + i. Multi-channel volumes (a 4D NIfTI
 * with one volume per MRI sequence, e.g. BraTS) store channel c as the slowest axis.
 */
export type DataType =
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'float32'
  | 'float64'

export type VoxelArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array

export type Vec3 = [number, number, number]

/**
 * Largest voxel data (bytes) a reader allocates by default: a header that implies more is
 * refused before any allocation or inflation. 2 GiB holds a 1024×1024×512 float32 volume.
 */
export const MAX_VOLUME_BYTES = 2 ** 31
/** Row-major 4×4 matrix as 4 rows of 4. */
export type Mat4 = [number[], number[], number[], number[]]

/** Geometry from a header, without the voxels. */
export interface VolumeHeader {
  /** Number of dimensions as stored (2 for a 2D NIfTI, 4 with channels). */
  ndim: number
  shape: Vec3
  channels: number
  spacing: Vec3
  affine: Mat4
  datatype: DataType
}

export interface Volume {
  /** [nx, ny, nz] */
  shape: Vec3
  /** Number of channels (1 for a 3D volume). */
  channels: number
  /** Voxel size in mm along i, j, k (column norms of the affine's 3×3 part). */
  spacing: Vec3
  /** Voxel (i, j, k) → world (RAS+, mm), as nibabel reports it. */
  affine: Mat4
  /** The on-disk datatype. */
  datatype: DataType
  /**
   * Voxel values. When the file has scl_slope/scl_inter that change values, this holds the
   * scaled values as Float32Array (float64 files stay Float64Array).
   */
  data: VoxelArray
  /** Where it came from (a file path or a DICOM series folder), for error messages. */
  source?: string
}

export function voxelCount(v: Pick<Volume, 'shape'>): number {
  return v.shape[0] * v.shape[1] * v.shape[2]
}
