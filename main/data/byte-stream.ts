/**
 * Bounded reading of volume files: a file (gzip-compressed or not) as a stream of bytes that a
 * reader consumes exactly as far as the header says — the header first, then the voxel data
 * straight into an array of the declared size — so nothing is inflated or allocated beyond what
 * the header implies, and data that runs past it is detected without reading it all.
 */
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'

/** True for the two gzip magic bytes. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b
}

/** Errors of opening / reading, with the errno code kept for the caller's message. */
export class StreamError extends Error {
  constructor(
    message: string,
    readonly kind: 'open' | 'gzip',
    readonly code?: string,
  ) {
    super(message)
  }
}

/** Pull-based reader over a (possibly gunzipped) file. */
export class ByteStream {
  private chunks: Buffer[] = []
  private buffered = 0
  private done = false
  private readonly it: AsyncIterator<Buffer>
  /** Bytes handed out so far (position in the uncompressed stream). */
  position = 0

  private constructor(
    private readonly streams: Readable[],
    readonly gzipped: boolean,
  ) {
    this.it = (streams[streams.length - 1] as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  }

  /**
   * Open `path` from byte `start`; gzip is detected from the first two bytes there (not from
   * the name) unless `gzip` says.
   */
  static async open(
    path: string,
    opts: { chunkSize?: number; start?: number; gzip?: boolean } = {},
  ): Promise<ByteStream> {
    const chunkSize = opts.chunkSize ?? 1 << 20
    const start = opts.start ?? 0
    let gzip = opts.gzip
    try {
      const fh = await open(path, 'r')
      try {
        if (gzip === undefined) {
          const first = Buffer.alloc(2)
          const { bytesRead } = await fh.read(first, 0, 2, start)
          gzip = isGzip(first.subarray(0, bytesRead))
        }
      } finally {
        await fh.close()
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw new StreamError(e.message, 'open', e.code)
    }
    const file = createReadStream(path, { highWaterMark: chunkSize, start })
    if (!gzip) return new ByteStream([file], false)
    const gunzip = createGunzip({ chunkSize: Math.min(chunkSize, 1 << 20) })
    file.on('error', (e) => gunzip.destroy(e))
    file.pipe(gunzip)
    return new ByteStream([file, gunzip], true)
  }

  private async pull(): Promise<boolean> {
    if (this.done) return false
    let r: IteratorResult<Buffer>
    try {
      r = await this.it.next()
    } catch (err) {
      this.done = true
      const e = err as NodeJS.ErrnoException
      throw new StreamError(
        e.message,
        this.gzipped && e.code?.startsWith('Z_') ? 'gzip' : 'open',
        e.code,
      )
    }
    if (r.done) {
      this.done = true
      return false
    }
    if (r.value.length) {
      this.chunks.push(r.value)
      this.buffered += r.value.length
    }
    return true
  }

  /** Up to `n` bytes (fewer only at the end of the stream). */
  async take(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n)
    const got = await this.readInto(out)
    return got === n ? out : out.subarray(0, got)
  }

  /** Fill `dst` from the stream; returns how many bytes were written (< length at the end). */
  async readInto(dst: Uint8Array): Promise<number> {
    let filled = 0
    while (filled < dst.length) {
      if (this.buffered === 0 && !(await this.pull())) break
      const c = this.chunks[0]
      if (!c) continue
      const n = Math.min(c.length, dst.length - filled)
      dst.set(c.subarray(0, n), filled)
      filled += n
      this.consume(n)
    }
    return filled
  }

  /** Skip `n` bytes; returns how many were skipped (< n at the end). */
  async skip(n: number): Promise<number> {
    let skipped = 0
    while (skipped < n) {
      if (this.buffered === 0 && !(await this.pull())) break
      const c = this.chunks[0]
      if (!c) continue
      const k = Math.min(c.length, n - skipped)
      skipped += k
      this.consume(k)
    }
    return skipped
  }

  /** How many bytes remain, counting at most `cap` of them (the rest is not read). */
  async remaining(cap = 1 << 20): Promise<number> {
    while (this.buffered < cap && (await this.pull())) {
      /* keep pulling */
    }
    return Math.min(this.buffered, cap)
  }

  private consume(n: number): void {
    this.position += n
    this.buffered -= n
    const c = this.chunks[0]
    if (n === c.length) this.chunks.shift()
    else this.chunks[0] = c.subarray(n)
  }

  /** Stop reading and release the file. */
  close(): void {
    this.done = true
    for (const s of this.streams) s.destroy()
    this.chunks = []
    this.buffered = 0
  }
}
