/**
 * Checkpoint files: named tensors + arbitrary JSON metadata in one self-checking file.
 *
 * Layout (all integers little-endian):
 *
 *   offset 0   8 bytes   magic "DSDCKPT1"
 *   offset 8   uint32    header length H (bytes of UTF-8 JSON)
 *   offset 12  uint32    reserved (0)
 *   offset 16  32 bytes  SHA-256 of the header JSON bytes
 *   offset 48  H bytes   header JSON (see {@link CheckpointHeader})
 *   then zero padding to a multiple of 8, then the data blob (dataBytes long)
 *
 * Each tensor's bytes start at `dataStart + offset` (offsets are multiples of 8) and hold the
 * raw little-endian values (float32, int32; bool as uint8). The header carries the SHA-256
 * of the whole blob. Loading checks magic, both hashes, sizes and every tensor's extent, and
 * throws a DsdError naming the file, the problem and the fix. Writes go to a temp file in
 * the same folder and are renamed into place (atomic on POSIX and NTFS).
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { DsdError, isNoSpace } from '../errors'
import type { AdamWState, SchedulerState } from './optimizer'
import { tf } from './tf'

export const CHECKPOINT_MAGIC = 'DSDCKPT1'
const PREFIX_BYTES = 48

/** Dtypes a checkpoint can store. */
export type CheckpointDtype = 'float32' | 'int32' | 'bool'

/** One tensor's entry in the header. */
export interface CheckpointEntry {
  name: string
  shape: number[]
  dtype: CheckpointDtype
  /** Byte offset inside the data blob (multiple of 8). */
  offset: number
  byteLength: number
}

/** The JSON header. */
export interface CheckpointHeader {
  format: 'dsd-checkpoint'
  version: 1
  createdAt: string
  /** Total bytes of the data blob. */
  dataBytes: number
  /** Hex SHA-256 of the data blob. */
  sha256: string
  tensors: CheckpointEntry[]
  metadata: unknown
}

/** What {@link loadCheckpoint} returns. */
export interface LoadedCheckpoint {
  tensors: Record<string, tf.Tensor>
  metadata: unknown
  header: CheckpointHeader
}

const BYTES: Record<CheckpointDtype, number> = { float32: 4, int32: 4, bool: 1 }

function align8(n: number): number {
  return Math.ceil(n / 8) * 8
}

/** Bytes of a tensor's values in checkpoint layout. */
async function tensorBytes(t: tf.Tensor): Promise<Uint8Array> {
  const data = await t.data()
  if (t.dtype === 'bool') return Uint8Array.from(data as Uint8Array, (v) => (v ? 1 : 0))
  const a = data as Float32Array | Int32Array
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

/**
 * Serialise tensors + metadata to the checkpoint layout, as a list of chunks (avoids one
 * giant buffer for big models). Tensors are read with `data()` (downloads from the GPU).
 */
export async function encodeCheckpoint(
  tensors: Record<string, tf.Tensor>,
  metadata: unknown = {},
): Promise<Uint8Array[]> {
  const entries: CheckpointEntry[] = []
  const blobs: Uint8Array[] = []
  const hash = createHash('sha256')
  let offset = 0
  const pad = (n: number) => {
    if (n > 0) {
      const z = new Uint8Array(n)
      blobs.push(z)
      hash.update(z)
      offset += n
    }
  }
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name]!
    if (t.isDisposed)
      throw new DsdError('CHECKPOINT_TENSOR', `checkpoint: tensor ${name} is disposed`, { name })
    if (t.dtype !== 'float32' && t.dtype !== 'int32' && t.dtype !== 'bool') {
      throw new DsdError(
        'CHECKPOINT_DTYPE',
        `checkpoint: tensor ${name} has dtype ${t.dtype}; only float32, int32 and bool can be saved`,
        { name, dtype: t.dtype },
      )
    }
    const bytes = await tensorBytes(t)
    entries.push({
      name,
      shape: [...t.shape],
      dtype: t.dtype,
      offset,
      byteLength: bytes.byteLength,
    })
    blobs.push(bytes)
    hash.update(bytes)
    offset += bytes.byteLength
    pad(align8(offset) - offset)
  }
  const header: CheckpointHeader = {
    format: 'dsd-checkpoint',
    version: 1,
    createdAt: new Date().toISOString(),
    dataBytes: offset,
    sha256: hash.digest('hex'),
    tensors: entries,
    metadata,
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(PREFIX_BYTES)
  prefix.write(CHECKPOINT_MAGIC, 0, 'latin1')
  prefix.writeUInt32LE(json.byteLength, 8)
  prefix.writeUInt32LE(0, 12)
  createHash('sha256').update(json).digest().copy(prefix, 16)
  const headPad = new Uint8Array(
    align8(PREFIX_BYTES + json.byteLength) - PREFIX_BYTES - json.byteLength,
  )
  return [prefix, json, headPad, ...blobs]
}

/**
 * Save named tensors and JSON-serialisable metadata to `path`, atomically (temp file in the
 * same folder, fsync, rename). The tensors are not disposed. Several paths get the same bytes
 * (encoded once), written one after the other in the given order; a failed write leaves that
 * file and the later ones as they were.
 */
export async function saveCheckpoint(
  path: string | readonly string[],
  tensors: Record<string, tf.Tensor>,
  metadata: unknown = {},
): Promise<CheckpointHeader> {
  const chunks = await encodeCheckpoint(tensors, metadata)
  const paths = typeof path === 'string' ? [path] : path
  for (const p of paths) writeChunksAtomically(p, chunks)
  return decodeHeader(Buffer.concat(chunks.slice(0, 2)), paths[0] ?? '<checkpoint>').header
}

function writeChunksAtomically(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  )
  let fd: number | null = null
  try {
    fd = openSync(tmp, 'w')
    for (const c of chunks) {
      let done = 0
      while (done < c.byteLength) done += writeSync(fd, c, done, c.byteLength - done)
    }
    fsyncSync(fd)
    closeSync(fd)
    fd = null
    renameSync(tmp, path)
  } catch (err) {
    if (fd !== null) closeSync(fd)
    rmSync(tmp, { force: true })
    const e = err as NodeJS.ErrnoException
    const fix = isNoSpace(e.code)
      ? 'no space to write it (the disk is full or a quota / file-size limit was hit); free space and save again'
      : e.code === 'EACCES' || e.code === 'EPERM'
        ? 'the folder is not writable; pick another workspace folder'
        : 'check the folder exists and is writable'
    throw new DsdError(
      isNoSpace(e.code) ? 'DISK_FULL' : 'CHECKPOINT_WRITE',
      `${path}: could not write the checkpoint (${e.message}); ${fix}`,
      {
        path,
        errno: e.code,
      },
    )
  }
}

function corrupt(path: string, problem: string, details: Record<string, unknown> = {}): DsdError {
  return new DsdError(
    'CHECKPOINT_CORRUPT',
    `${path}: ${problem}; the checkpoint is damaged or incomplete — use an earlier checkpoint or retrain`,
    { path, ...details },
  )
}

function decodeHeader(
  buf: Uint8Array,
  path: string,
): { header: CheckpointHeader; dataStart: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.byteLength < PREFIX_BYTES) {
    throw corrupt(
      path,
      `file has ${b.byteLength} bytes, less than the ${PREFIX_BYTES}-byte checkpoint prefix`,
    )
  }
  const magic = b.toString('latin1', 0, 8)
  if (magic !== CHECKPOINT_MAGIC) {
    throw new DsdError(
      'CHECKPOINT_FORMAT',
      `${path}: not a DSD checkpoint (starts with ${JSON.stringify(magic)}, expected "${CHECKPOINT_MAGIC}"); pick a .dsdckpt file written by this app`,
      { path },
    )
  }
  const h = b.readUInt32LE(8)
  if (PREFIX_BYTES + h > b.byteLength) {
    throw corrupt(
      path,
      `header says ${h.toLocaleString('en')} bytes of JSON but the file ends after ${(b.byteLength - PREFIX_BYTES).toLocaleString('en')}; the file is truncated`,
    )
  }
  const json = b.subarray(PREFIX_BYTES, PREFIX_BYTES + h)
  const want = b.subarray(16, 48).toString('hex')
  const got = createHash('sha256').update(json).digest('hex')
  if (want !== got)
    throw corrupt(
      path,
      `header checksum mismatch (sha256 ${got.slice(0, 12)}…, expected ${want.slice(0, 12)}…)`,
    )
  let header: CheckpointHeader
  try {
    header = JSON.parse(json.toString('utf8')) as CheckpointHeader
  } catch (err) {
    throw corrupt(path, `header is not valid JSON (${(err as Error).message})`)
  }
  if (header.format !== 'dsd-checkpoint' || header.version !== 1) {
    throw new DsdError(
      'CHECKPOINT_FORMAT',
      `${path}: checkpoint format ${header.format} v${header.version} is not supported by this version (v1); update the app`,
      { path },
    )
  }
  return { header, dataStart: align8(PREFIX_BYTES + h) }
}

/**
 * Decode a checkpoint held in memory. `path` is only used in error messages. Verifies the
 * header and data checksums and every tensor's extent.
 */
export function decodeCheckpoint(buf: Uint8Array, path = '<buffer>'): LoadedCheckpoint {
  const { header, dataStart } = decodeHeader(buf, path)
  const have = buf.byteLength - dataStart
  if (have < header.dataBytes) {
    throw corrupt(
      path,
      `header says ${header.dataBytes.toLocaleString('en')} bytes of tensor data but the file has ${Math.max(0, have).toLocaleString('en')}; the file is truncated`,
      { expected: header.dataBytes, actual: have },
    )
  }
  if (have > header.dataBytes) {
    throw corrupt(
      path,
      `file has ${(have - header.dataBytes).toLocaleString('en')} unexpected bytes after the tensor data`,
    )
  }
  const blob = buf.subarray(dataStart, dataStart + header.dataBytes)
  const sha = createHash('sha256').update(blob).digest('hex')
  if (sha !== header.sha256) {
    throw corrupt(
      path,
      `tensor data checksum mismatch (sha256 ${sha.slice(0, 12)}…, expected ${header.sha256.slice(0, 12)}…)`,
    )
  }
  const tensors: Record<string, tf.Tensor> = {}
  try {
    for (const e of header.tensors) {
      const per = BYTES[e.dtype]
      const count = e.shape.reduce((a, c) => a * c, 1)
      if (
        !per ||
        count * per !== e.byteLength ||
        e.offset < 0 ||
        e.offset + e.byteLength > header.dataBytes
      ) {
        throw corrupt(
          path,
          `tensor ${e.name} [${e.shape}] ${e.dtype} has an inconsistent extent in the header`,
        )
      }
      // copy out (also fixes alignment for typed-array views)
      const bytes = blob.slice(e.offset, e.offset + e.byteLength)
      const values =
        e.dtype === 'float32'
          ? new Float32Array(bytes.buffer, bytes.byteOffset, count)
          : e.dtype === 'int32'
            ? new Int32Array(bytes.buffer, bytes.byteOffset, count)
            : bytes
      tensors[e.name] = tf.tensor(values, e.shape, e.dtype)
    }
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose()
    throw err
  }
  return { tensors, metadata: header.metadata, header }
}

/** Load and verify a checkpoint file; the caller owns (and disposes) the returned tensors. */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  let buf: Buffer
  try {
    buf = readFileSync(path)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new DsdError(
      e.code === 'ENOENT' ? 'CHECKPOINT_MISSING' : 'CHECKPOINT_READ',
      `${path}: cannot read the checkpoint (${e.message}); check the path`,
      { path, errno: e.code },
    )
  }
  return decodeCheckpoint(buf, path)
}

/** Read only the header (names, shapes, metadata) without creating tensors or hashing data. */
export function readCheckpointHeader(path: string): CheckpointHeader {
  const fd = openSync(path, 'r')
  try {
    const prefix = Buffer.alloc(PREFIX_BYTES)
    const n = readSync(fd, prefix, 0, PREFIX_BYTES, 0)
    if (n < PREFIX_BYTES || prefix.toString('latin1', 0, 8) !== CHECKPOINT_MAGIC) {
      return decodeHeader(prefix.subarray(0, n), path).header // throws the right error
    }
    const h = prefix.readUInt32LE(8)
    const buf = Buffer.alloc(PREFIX_BYTES + h)
    prefix.copy(buf)
    const got = readSync(fd, buf, PREFIX_BYTES, h, PREFIX_BYTES)
    return decodeHeader(buf.subarray(0, PREFIX_BYTES + got), path).header
  } finally {
    closeSync(fd)
  }
}

/** Everything a training checkpoint holds, in memory. */
export interface TrainingState {
  /** Model weights by name. */
  weights: Record<string, tf.Tensor>
  /** Optimizer state from `AdamW.exportState()`. */
  optimizer?: AdamWState
  /** LR scheduler state from `StepLR.state()` or `WarmupPolyLR.state()`. */
  scheduler?: SchedulerState
  /**
   * Anything else JSON-serialisable (epoch, config, ...). No generator state: the trainer
   * reseeds each epoch from (seed, epoch), so the epoch is all a resume needs.
   */
  metadata?: Record<string, unknown>
}

/**
 * Flatten a {@link TrainingState} into checkpoint tensors (`weights/…`, `optimizer/m/…`,
 * `optimizer/v/…`) and metadata (`{ training: { optimizer, scheduler }, ...metadata }`).
 */
export function packTrainingState(s: TrainingState): {
  tensors: Record<string, tf.Tensor>
  metadata: Record<string, unknown>
} {
  const tensors: Record<string, tf.Tensor> = {}
  for (const [k, t] of Object.entries(s.weights)) tensors[`weights/${k}`] = t
  if (s.optimizer)
    for (const [k, t] of Object.entries(s.optimizer.tensors)) tensors[`optimizer/${k}`] = t
  return {
    tensors,
    metadata: {
      ...(s.metadata ?? {}),
      training: {
        optimizer: s.optimizer?.json ?? null,
        scheduler: s.scheduler ?? null,
      },
    },
  }
}

/** Inverse of {@link packTrainingState} on a loaded checkpoint. */
export function unpackTrainingState(c: LoadedCheckpoint): TrainingState {
  const weights: Record<string, tf.Tensor> = {}
  const opt: Record<string, tf.Tensor> = {}
  for (const [k, t] of Object.entries(c.tensors)) {
    if (k.startsWith('weights/')) weights[k.slice(8)] = t
    else if (k.startsWith('optimizer/')) opt[k.slice(10)] = t
  }
  const meta = { ...((c.metadata ?? {}) as Record<string, unknown>) }
  const training = (meta.training ?? {}) as {
    optimizer?: AdamWState['json'] | null
    scheduler?: SchedulerState | null
  }
  delete meta.training
  return {
    weights,
    optimizer: training.optimizer ? { json: training.optimizer, tensors: opt } : undefined,
    scheduler: training.scheduler ?? undefined,
    metadata: meta,
  }
}
