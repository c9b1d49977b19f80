/**
 * The dataset code's door to volume files: header-only geometry and full reads. NIfTI goes
 * through main/data/nifti.ts; other formats are rejected with a clear error until a reader
 * for them is wired in here.
 */
import { DsdError } from '../errors'
import { readNifti, readNiftiHeader } from './nifti'
import type { DataType, Mat4, Vec3, Volume } from './volume'

/** Geometry from a header, without the voxels. */
export interface VolumeHeader {
  ndim: number
  shape: Vec3
  channels: number
  spacing: Vec3
  affine: Mat4
  datatype: DataType
}

const NIFTI = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i

function unsupported(path: string): DsdError {
  return new DsdError(
    'FORMAT_UNSUPPORTED',
    `${path}: only NIfTI (.nii, .nii.gz) volumes can be imported as dataset files; convert it with \`dsd convert\``,
    { file: path },
  )
}

/** Read only the header of a volume file. */
export async function readVolumeHeader(path: string): Promise<VolumeHeader> {
  if (!NIFTI.test(path)) throw unsupported(path)
  const h = await readNiftiHeader(path)
  return {
    ndim: h.ndim,
    shape: h.shape,
    channels: h.channels,
    spacing: h.spacing,
    affine: h.affine,
    datatype: h.datatype,
  }
}

/** Read a whole volume file. */
export async function readVolumeFile(path: string): Promise<Volume> {
  if (!NIFTI.test(path)) throw unsupported(path)
  return readNifti(path)
}
