/**
 * Half-precision rounding on the host: what the f16 kernels do to their operands
 * (`f16(x)` in WGSL rounds to nearest, ties to even), so that tests and checks can compute
 * the exact f32 reference of an f16-operand kernel on the CPU.
 */

/** `a` rounded to the nearest f16 value, ties to even (returned as f32; |v| ≤ 65504). */
export function roundF16(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length)
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!
    if (v === 0 || !Number.isFinite(v)) {
      out[i] = v
      continue
    }
    const mag = Math.abs(v)
    let e = Math.floor(Math.log2(mag))
    if (2 ** e > mag) e--
    else if (2 ** (e + 1) <= mag) e++
    const ulp = 2 ** (Math.max(e, -14) - 10) // subnormals below 2^-14
    const q = v / ulp
    let r = Math.round(q)
    if (Math.abs(q - Math.trunc(q)) === 0.5) r = 2 * Math.round(q / 2)
    out[i] = r * ulp
  }
  return out
}
