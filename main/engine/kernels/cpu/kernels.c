/*
 * DSD Studio CPU kernels: WebAssembly SIMD (wasm32 + simd128), run on every core by
 * worker_threads that share one WebAssembly.Memory (see runtime.ts). Built by build.mjs
 * into kernels.wasm; the committed binary is what the app loads.
 *
 * Every kernel is split into tasks that are fixed by the problem's shape alone, never by the
 * number of threads, and every output element is computed by exactly one task in a fixed order.
 * Reductions write per-chunk partials that one pass sums in chunk order. So results are
 * bit-identical for any thread count and any scheduling (no float atomics).
 *
 * Convolutions are "indirect GEMMs" (as XNNPACK's IGEMM): for a tile of MR output pixels the
 * driver computes, per kernel tap, a pointer to the input row (channels-last, so a row is the
 * contiguous channel vector of one voxel) or to a zero row outside the volume, and a register-
 * blocked micro-kernel accumulates MR × NR outputs over all taps and channels. No im2col
 * matrix is ever built. The same driver runs the forward convolution, the data gradient (per
 * stride-residue class, so only taps that hit a voxel are visited), the 2×2×2 stride-2
 * transposed convolution and its gradient, and 1×1×1 convolutions.
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define ALWAYS_INLINE __attribute__((always_inline)) static inline
#define MAXT 27
/* im2col tiles are used when a tile row (taps × channels) has at most this many floats */
#define COL_MAX 640

typedef float f32;

/* ------------------------------------------------------------------------------------------ */
/* Direct convolution descriptor (all int32 fields; pointers are wasm32 addresses).            */
/*                                                                                            */
/* The work is a grid of points j = (b, jd, jh, jw) with batch × gd × gh × gw points. A is     */
/* stored zero-padded, [batch, ad, ah, aw, kc], so that every tap of every point is inside:    */
/* point j reads the rows  A(b, alpha·j + lo) + off[t]  (off: per-tap offsets in floats).      */
/* Output tap o writes the row at  f + step·j + obeta[o]  of out [batch, od, oh, ow, n]: one   */
/* output tap normally, eight for the 2×2×2 transposed conv. B is packed as                   */
/* [otaps][ceil(n / nr)][taps][kc][nr]; output blocks (otap, n-block) are numbered            */
/* otap·ceil(n / nr) + block. A tile is up to R consecutive points of one W-row.              */
typedef struct {
  int32_t batch, gd, gh, gw;
  f32 *out;
  int32_t od, oh, ow, n;
  int32_t fd, fh, fw;
  int32_t sd, sh, sw;
  int32_t otaps;
  const int32_t *obeta; /* [otaps][3] */
  const f32 *a;
  int32_t ad, ah, aw, kc;
  int32_t ald, alh, alw;
  int32_t lod, loh, low;
  int32_t taps;
  const int32_t *off; /* [taps] */
  const f32 *b;
  int32_t rows_per_task; /* grid points per task */
  int32_t nb_per_task;   /* output blocks per task */
  const f32 *bias;       /* [n] or 0 */
  int32_t accumulate;    /* 1: add to the existing output */
  int32_t nr;            /* 4 or 8 output channels per block (tile of 8 or 4 points) */
} IConv;

/* Store an R × (4·NV) accumulator tile to rows c0 + r·ldc (r < rows, nvalid columns). */
ALWAYS_INLINE void store_tile(const int R, const int NV, v128_t acc[][2], f32 *c0, int32_t ldc,
                              int32_t rows, int32_t nvalid, int32_t accumulate, const f32 *bias) {
  if (bias) {
    f32 bb[8] __attribute__((aligned(16)));
    for (int32_t i = 0; i < 4 * NV; i++) bb[i] = i < nvalid ? bias[i] : 0.f;
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++)
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_v128_load(bb + 4 * v));
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < R; r++) {
    if (r >= rows) break;
    f32 *cr = c0 + r * ldc;
    if (nvalid == 4 * NV) {
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; v++) {
        v128_t x = acc[r][v];
        if (accumulate) x = wasm_f32x4_add(x, wasm_v128_load(cr + 4 * v));
        wasm_v128_store(cr + 4 * v, x);
      }
    } else {
      f32 tmp[8] __attribute__((aligned(16)));
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; v++) wasm_v128_store(tmp + 4 * v, acc[r][v]);
      if (accumulate)
        for (int32_t i = 0; i < nvalid; i++) cr[i] += tmp[i];
      else
        for (int32_t i = 0; i < nvalid; i++) cr[i] = tmp[i];
    }
  }
}

/*
 * Micro-kernels: R points (rows a0 + r·S) × 4·NV output channels, over T taps (offsets off[t])
 * and kc channels; (R, NV) = (4, 2) or (8, 1). KC > 0 is kc known at compile time (channel
 * loop unrolled, addresses are immediate offsets); KC = 0 loops over a runtime kc. The
 * accumulators are plain locals: an array here would live in linear memory, where clang must
 * assume the input pointers alias it and store it back on every iteration.
 */
#define MADD(c, x, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(x, b))
/*
 * Keeps clang from hoisting all eight splat loads of an 8-row step above the arithmetic: V8
 * allocates registers in the order it is given, and eight live splats + eight accumulators
 * exceed x64's sixteen vector registers, which spilled an accumulator to the stack (a
 * store/load on the loop-carried chain of every iteration).
 */
#define SCHED_BARRIER() __asm__ volatile("" ::: "memory")

ALWAYS_INLINE void kernel_4x2(const int KC, int32_t T, const int32_t *off, const f32 *a0,
                              int32_t S, int32_t kc, const f32 *b, f32 *c0, int32_t ldc,
                              int32_t rows, int32_t nvalid, int32_t accumulate, const f32 *bias) {
  v128_t c00 = wasm_f32x4_const_splat(0.f), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
         c21 = c00, c30 = c00, c31 = c00;
  for (int32_t t = 0; t < T; t++) {
    const f32 *q0 = a0 + off[t], *q1 = q0 + S, *q2 = q1 + S, *q3 = q2 + S;
#define STEP_4x2(k)                                                                             \
  {                                                                                              \
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);                            \
    b += 8;                                                                                      \
    v128_t x = wasm_v128_load32_splat(q0 + (k));                                                 \
    MADD(c00, x, b0);                                                                            \
    MADD(c01, x, b1);                                                                            \
    x = wasm_v128_load32_splat(q1 + (k));                                                        \
    MADD(c10, x, b0);                                                                            \
    MADD(c11, x, b1);                                                                            \
    x = wasm_v128_load32_splat(q2 + (k));                                                        \
    MADD(c20, x, b0);                                                                            \
    MADD(c21, x, b1);                                                                            \
    x = wasm_v128_load32_splat(q3 + (k));                                                        \
    MADD(c30, x, b0);                                                                            \
    MADD(c31, x, b1);                                                                            \
  }
    if (KC > 0) {
#pragma clang loop unroll(full)
      for (int32_t k = 0; k < KC; k++) STEP_4x2(k)
    } else {
      for (int32_t k = 0; k < kc; k++) STEP_4x2(k)
    }
  }
  v128_t acc[8][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  store_tile(4, 2, acc, c0, ldc, rows, nvalid, accumulate, bias);
}

ALWAYS_INLINE void kernel_8x1(const int KC, int32_t T, const int32_t *off, const f32 *a0,
                              int32_t S, int32_t kc, const f32 *b, f32 *c0, int32_t ldc,
                              int32_t rows, int32_t nvalid, int32_t accumulate, const f32 *bias) {
  v128_t c0v = wasm_f32x4_const_splat(0.f), c1v = c0v, c2v = c0v, c3v = c0v, c4v = c0v,
         c5v = c0v, c6v = c0v, c7v = c0v;
  for (int32_t t = 0; t < T; t++) {
    const f32 *q0 = a0 + off[t], *q1 = q0 + S, *q2 = q1 + S, *q3 = q2 + S, *q4 = q3 + S,
              *q5 = q4 + S, *q6 = q5 + S, *q7 = q6 + S;
#define STEP_8x1(k)                                                                             \
  {                                                                                              \
    const v128_t b0 = wasm_v128_load(b);                                                         \
    b += 4;                                                                                      \
    MADD(c0v, wasm_v128_load32_splat(q0 + (k)), b0);                                             \
    MADD(c1v, wasm_v128_load32_splat(q1 + (k)), b0);                                             \
    MADD(c2v, wasm_v128_load32_splat(q2 + (k)), b0);                                             \
    MADD(c3v, wasm_v128_load32_splat(q3 + (k)), b0);                                             \
    SCHED_BARRIER();                                                                             \
    MADD(c4v, wasm_v128_load32_splat(q4 + (k)), b0);                                             \
    MADD(c5v, wasm_v128_load32_splat(q5 + (k)), b0);                                             \
    MADD(c6v, wasm_v128_load32_splat(q6 + (k)), b0);                                             \
    MADD(c7v, wasm_v128_load32_splat(q7 + (k)), b0);                                             \
  }
    if (KC > 0) {
#pragma clang loop unroll(full)
      for (int32_t k = 0; k < KC; k++) STEP_8x1(k)
    } else {
      for (int32_t k = 0; k < kc; k++) STEP_8x1(k)
    }
  }
  v128_t acc[8][2] = {{c0v}, {c1v}, {c2v}, {c3v}, {c4v}, {c5v}, {c6v}, {c7v}};
  store_tile(8, 1, acc, c0, ldc, rows, nvalid, accumulate, bias);
}

ALWAYS_INLINE void kernel_4x1(const int KC, int32_t T, const int32_t *off, const f32 *a0,
                              int32_t S, int32_t kc, const f32 *b, f32 *c0, int32_t ldc,
                              int32_t rows, int32_t nvalid, int32_t accumulate, const f32 *bias) {
  v128_t c0v = wasm_f32x4_const_splat(0.f), c1v = c0v, c2v = c0v, c3v = c0v;
  for (int32_t t = 0; t < T; t++) {
    const f32 *q0 = a0 + off[t], *q1 = q0 + S, *q2 = q1 + S, *q3 = q2 + S;
#define STEP_4x1(k)                                                                             \
  {                                                                                              \
    const v128_t b0 = wasm_v128_load(b);                                                         \
    b += 4;                                                                                      \
    MADD(c0v, wasm_v128_load32_splat(q0 + (k)), b0);                                             \
    MADD(c1v, wasm_v128_load32_splat(q1 + (k)), b0);                                             \
    MADD(c2v, wasm_v128_load32_splat(q2 + (k)), b0);                                             \
    MADD(c3v, wasm_v128_load32_splat(q3 + (k)), b0);                                             \
  }
    if (KC > 0) {
#pragma clang loop unroll(full)
      for (int32_t k = 0; k < KC; k++) STEP_4x1(k)
    } else {
      for (int32_t k = 0; k < kc; k++) STEP_4x1(k)
    }
  }
  v128_t acc[8][2] = {{c0v}, {c1v}, {c2v}, {c3v}};
  store_tile(4, 1, acc, c0, ldc, rows, nvalid, accumulate, bias);
}

ALWAYS_INLINE void kernel_rows(const int R, const int NV, const int KC, int32_t T,
                               const int32_t *off, const f32 *a0, int32_t S, int32_t kc,
                               const f32 *b, f32 *c0, int32_t ldc, int32_t rows, int32_t nvalid,
                               int32_t accumulate, const f32 *bias) {
  if (R == 4 && NV == 2)
    kernel_4x2(KC, T, off, a0, S, kc, b, c0, ldc, rows, nvalid, accumulate, bias);
  else if (R == 4)
    kernel_4x1(KC, T, off, a0, S, kc, b, c0, ldc, rows, nvalid, accumulate, bias);
  else
    kernel_8x1(KC, T, off, a0, S, kc, b, c0, ldc, rows, nvalid, accumulate, bias);
}

typedef void (*RowKernel)(int32_t T, const int32_t *off, const f32 *a0, int32_t S, int32_t kc,
                          const f32 *b, f32 *c0, int32_t ldc, int32_t rows, int32_t nvalid,
                          int32_t accumulate, const f32 *bias);

#define ROW_KERNEL(R, NV, KC)                                                                     \
  __attribute__((noinline, unused)) static void rows_##R##x##NV##_##KC(                               \
      int32_t T, const int32_t *off, const f32 *a0, int32_t S, int32_t kc, const f32 *b, f32 *c0, \
      int32_t ldc, int32_t rows, int32_t nvalid, int32_t accumulate, const f32 *bias) {          \
    kernel_rows(R, NV, KC, T, off, a0, S, kc, b, c0, ldc, rows, nvalid, accumulate, bias);       \
  }
ROW_KERNEL(8, 1, 0)
ROW_KERNEL(4, 1, 0)
ROW_KERNEL(8, 1, 1)
ROW_KERNEL(4, 1, 1)
ROW_KERNEL(8, 1, 2)
ROW_KERNEL(4, 1, 2)
ROW_KERNEL(8, 1, 3)
ROW_KERNEL(4, 1, 3)
ROW_KERNEL(8, 1, 4)
ROW_KERNEL(4, 1, 4)
ROW_KERNEL(8, 1, 8)
ROW_KERNEL(4, 1, 8)
ROW_KERNEL(4, 2, 0)
ROW_KERNEL(4, 2, 1)
ROW_KERNEL(4, 2, 2)
ROW_KERNEL(4, 2, 3)
ROW_KERNEL(4, 2, 4)
ROW_KERNEL(4, 2, 8)

#ifndef NR4_ROWS
#define NR4_ROWS 8
#endif
#define RK(R, KC) rows_##R##x1_##KC
#define RKX(R, KC) RK(R, KC)
static RowKernel row_kernel(int32_t nr, int32_t kc) {
  if (nr == 4) {
    switch (kc) {
      case 1: return RKX(NR4_ROWS, 1);
      case 2: return RKX(NR4_ROWS, 2);
      case 3: return RKX(NR4_ROWS, 3);
      case 4: return RKX(NR4_ROWS, 4);
      case 8: return RKX(NR4_ROWS, 8);
      default: return RKX(NR4_ROWS, 0);
    }
  }
  switch (kc) {
    case 1: return rows_4x2_1;
    case 2: return rows_4x2_2;
    case 3: return rows_4x2_3;
    case 4: return rows_4x2_4;
    case 8: return rows_4x2_8;
    default: return rows_4x2_0;
  }
}

__attribute__((noinline)) static void iconv_task(const IConv *p, int32_t task) {
  const int32_t nr = p->nr, R = nr == 8 ? 4 : NR4_ROWS;
  const int32_t M = p->batch * p->gd * p->gh * p->gw;
  const int32_t nbo = (p->n + nr - 1) / nr; /* blocks per output tap */
  const int32_t nblocks = nbo * p->otaps;
  const int32_t ntn = (nblocks + p->nb_per_task - 1) / p->nb_per_task;
  const int32_t mt = task / ntn, nt = task % ntn;
  const int32_t m_begin = mt * p->rows_per_task;
  int32_t m_end = m_begin + p->rows_per_task;
  if (m_end > M) m_end = M;
  const int32_t nb_begin = nt * p->nb_per_task;
  int32_t nb_end = nb_begin + p->nb_per_task;
  if (nb_end > nblocks) nb_end = nblocks;
  const int32_t T = p->taps, kc = p->kc;
  const RowKernel kern = row_kernel(nr, kc);
  const int32_t S = p->alw * kc, ldc = p->sw * p->n;
  const int64_t bstride = (int64_t)T * kc * nr;
  int32_t m = m_begin;
  int32_t jw = m % p->gw, q = m / p->gw;
  int32_t jh = q % p->gh;
  q /= p->gh;
  int32_t jd = q % p->gd, b = q / p->gd;
  while (m < m_end) {
    int32_t rows = p->gw - jw;
    if (rows > R) rows = R;
    if (rows > m_end - m) rows = m_end - m;
    const f32 *a0 =
        p->a + ((int64_t)((b * p->ad + p->ald * jd + p->lod) * p->ah + p->alh * jh + p->loh) * p->aw +
                p->alw * jw + p->low) * kc;
    const int32_t od = p->fd + p->sd * jd, oh = p->fh + p->sh * jh, ow = p->fw + p->sw * jw;
    for (int32_t blk = nb_begin; blk < nb_end; blk++) {
      const int32_t o = blk / nbo, n0 = (blk % nbo) * nr;
      const int32_t nvalid = p->n - n0 < nr ? p->n - n0 : nr;
      f32 *c0 = p->out +
                ((int64_t)((b * p->od + od + p->obeta[3 * o]) * p->oh + oh + p->obeta[3 * o + 1]) * p->ow +
                 ow + p->obeta[3 * o + 2]) * p->n + n0;
      kern(T, p->off, a0, S, kc, p->b + blk * bstride, c0, ldc, rows, nvalid, p->accumulate,
           p->bias ? p->bias + n0 : 0);
    }
    m += rows;
    jw += rows;
    if (jw == p->gw) {
      jw = 0;
      if (++jh == p->gh) {
        jh = 0;
        if (++jd == p->gd) {
          jd = 0;
          b++;
        }
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Weight gradient: out[t][pc][qc] = Σ_j P_t(j)[·] ⊗ Q(j)[·] over the grid j (batch included). */
/* Q(j) = q + m·qc with m the linear grid index; P is stored zero-padded like A above, and     */
/* P_t(j) = P(b, alpha·j + lo) + off[t]. Tasks = (chunk, tap group of `group` taps). A task    */
/* gathers, for WSUB points at a time, the group's P rows side by side (an im2col strip) and   */
/* accumulates strip^T · Q into partial[chunk][g][row][qcp] (rows padded to rp = group·pc      */
/* rounded up to the tile height, qcp = qc rounded up to nr).                                  */
typedef struct {
  int32_t batch, gd, gh, gw;
  const f32 *p;
  int32_t pd, ph, pw, pc;
  int32_t ald, alh, alw;
  int32_t lod, loh, low;
  int32_t taps;
  const int32_t *off;
  const f32 *q;
  int32_t qc;
  f32 *partial;
  int32_t chunk; /* grid points per chunk */
  int32_t group; /* taps per task */
  int32_t nr;    /* 4 or 8 */
} WGrad;

#define WSUB 32
#define WSTRIP 1024

/* acc (in out, row stride ldo) += Σ_i strip[i][p0 + r] · Q_i[q0 ..] for an MRc × 4·NV block */
ALWAYS_INLINE void wgrad_block(const int MRc, const int NV, int32_t np, const f32 *strip,
                               int32_t ls, int32_t p0, const f32 *const *qq, int32_t q0, f32 *out,
                               int32_t ldo) {
  if (MRc == 4 && NV == 1) {
    v128_t c0v = wasm_v128_load(out), c1v = wasm_v128_load(out + ldo);
    v128_t c2v = wasm_v128_load(out + 2 * ldo), c3v = wasm_v128_load(out + 3 * ldo);
    const f32 *pr = strip + p0;
    for (int32_t i = 0; i < np; i++, pr += ls) {
      const v128_t b0 = wasm_v128_load(qq[i] + q0);
      MADD(c0v, wasm_v128_load32_splat(pr), b0);
      MADD(c1v, wasm_v128_load32_splat(pr + 1), b0);
      MADD(c2v, wasm_v128_load32_splat(pr + 2), b0);
      MADD(c3v, wasm_v128_load32_splat(pr + 3), b0);
    }
    wasm_v128_store(out, c0v);
    wasm_v128_store(out + ldo, c1v);
    wasm_v128_store(out + 2 * ldo, c2v);
    wasm_v128_store(out + 3 * ldo, c3v);
  } else if (MRc == 4) {
    v128_t c00 = wasm_v128_load(out), c01 = wasm_v128_load(out + 4);
    v128_t c10 = wasm_v128_load(out + ldo), c11 = wasm_v128_load(out + ldo + 4);
    v128_t c20 = wasm_v128_load(out + 2 * ldo), c21 = wasm_v128_load(out + 2 * ldo + 4);
    v128_t c30 = wasm_v128_load(out + 3 * ldo), c31 = wasm_v128_load(out + 3 * ldo + 4);
    const f32 *pr = strip + p0;
    for (int32_t i = 0; i < np; i++, pr += ls) {
      const f32 *qr = qq[i] + q0;
      const v128_t b0 = wasm_v128_load(qr), b1 = wasm_v128_load(qr + 4);
      v128_t x = wasm_v128_load32_splat(pr);
      MADD(c00, x, b0);
      MADD(c01, x, b1);
      x = wasm_v128_load32_splat(pr + 1);
      MADD(c10, x, b0);
      MADD(c11, x, b1);
      x = wasm_v128_load32_splat(pr + 2);
      MADD(c20, x, b0);
      MADD(c21, x, b1);
      x = wasm_v128_load32_splat(pr + 3);
      MADD(c30, x, b0);
      MADD(c31, x, b1);
    }
    wasm_v128_store(out, c00);
    wasm_v128_store(out + 4, c01);
    wasm_v128_store(out + ldo, c10);
    wasm_v128_store(out + ldo + 4, c11);
    wasm_v128_store(out + 2 * ldo, c20);
    wasm_v128_store(out + 2 * ldo + 4, c21);
    wasm_v128_store(out + 3 * ldo, c30);
    wasm_v128_store(out + 3 * ldo + 4, c31);
  } else {
    v128_t c0v = wasm_v128_load(out), c1v = wasm_v128_load(out + ldo);
    v128_t c2v = wasm_v128_load(out + 2 * ldo), c3v = wasm_v128_load(out + 3 * ldo);
    v128_t c4v = wasm_v128_load(out + 4 * ldo), c5v = wasm_v128_load(out + 5 * ldo);
    v128_t c6v = wasm_v128_load(out + 6 * ldo), c7v = wasm_v128_load(out + 7 * ldo);
    const f32 *pr = strip + p0;
    for (int32_t i = 0; i < np; i++, pr += ls) {
      const v128_t b0 = wasm_v128_load(qq[i] + q0);
      MADD(c0v, wasm_v128_load32_splat(pr), b0);
      MADD(c1v, wasm_v128_load32_splat(pr + 1), b0);
      MADD(c2v, wasm_v128_load32_splat(pr + 2), b0);
      MADD(c3v, wasm_v128_load32_splat(pr + 3), b0);
      SCHED_BARRIER();
      MADD(c4v, wasm_v128_load32_splat(pr + 4), b0);
      MADD(c5v, wasm_v128_load32_splat(pr + 5), b0);
      MADD(c6v, wasm_v128_load32_splat(pr + 6), b0);
      MADD(c7v, wasm_v128_load32_splat(pr + 7), b0);
    }
    wasm_v128_store(out, c0v);
    wasm_v128_store(out + ldo, c1v);
    wasm_v128_store(out + 2 * ldo, c2v);
    wasm_v128_store(out + 3 * ldo, c3v);
    wasm_v128_store(out + 4 * ldo, c4v);
    wasm_v128_store(out + 5 * ldo, c5v);
    wasm_v128_store(out + 6 * ldo, c6v);
    wasm_v128_store(out + 7 * ldo, c7v);
  }
  (void)NV;
}

__attribute__((noinline)) static void wgrad_task(const WGrad *w, int32_t task) {
  const int32_t T = w->taps, G = w->group, pc = w->pc;
  const int32_t ngroups = (T + G - 1) / G;
  const int32_t chunk = task / ngroups, g = task % ngroups;
  const int32_t t0 = g * G, t1 = t0 + G < T ? t0 + G : T;
  const int32_t nr = w->nr, mr = 4;
  const int32_t rp = (G * pc + mr - 1) / mr * mr, qcp = (w->qc + nr - 1) / nr * nr;
  const int32_t ls = (t1 - t0) * pc; /* strip row length */
  const int32_t M = w->batch * w->gd * w->gh * w->gw;
  const int32_t m_begin = chunk * w->chunk;
  int32_t m_end = m_begin + w->chunk;
  if (m_end > M) m_end = M;
  f32 *outp = w->partial + ((int64_t)chunk * ngroups + g) * rp * qcp;
  for (int32_t i = 0; i < rp * qcp; i++) outp[i] = 0.f;
  f32 strip[WSUB * WSTRIP + 8] __attribute__((aligned(16)));
  const f32 *qq[WSUB];
  int32_t m = m_begin;
  int32_t jw = m % w->gw, q = m / w->gw;
  int32_t jh = q % w->gh;
  q /= w->gh;
  int32_t jd = q % w->gd, b = q / w->gd;
  while (m < m_end) {
    int32_t np = 0;
    for (; np < WSUB && m < m_end; np++, m++) {
      f32 *dst = strip + np * ls;
      const f32 *base =
          w->p + ((int64_t)((b * w->pd + w->ald * jd + w->lod) * w->ph + w->alh * jh + w->loh) * w->pw +
                  w->alw * jw + w->low) * pc;
      if ((pc & 3) == 0) {
        for (int32_t t = t0; t < t1; t++, dst += pc) {
          const f32 *src = base + w->off[t];
          for (int32_t i = 0; i < pc; i += 4) wasm_v128_store(dst + i, wasm_v128_load(src + i));
        }
      } else if (pc == 1) {
        for (int32_t t = t0; t < t1; t++) *dst++ = base[w->off[t]];
      } else {
        for (int32_t t = t0; t < t1; t++, dst += pc) {
          const f32 *src = base + w->off[t];
          for (int32_t i = 0; i < pc; i++) dst[i] = src[i];
        }
      }
      qq[np] = w->q + (int64_t)m * w->qc;
      if (++jw == w->gw) {
        jw = 0;
        if (++jh == w->gh) {
          jh = 0;
          if (++jd == w->gd) {
            jd = 0;
            b++;
          }
        }
      }
    }
    for (int32_t p0 = 0; p0 < ls; p0 += mr) {
      for (int32_t q0 = 0; q0 < qcp; q0 += nr) {
        f32 *o = outp + (int64_t)p0 * qcp + q0;
        if (nr == 8)
          wgrad_block(4, 2, np, strip, ls, p0, qq, q0, o, qcp);
        else
          wgrad_block(4, 1, np, strip, ls, p0, qq, q0, o, qcp);
      }
    }
  }
}

/* out[t][pc][qc] = Σ_chunk partial[chunk][group g][row][q], summed in chunk order in float64. */
/* Tasks split the T·pc output rows.                                                          */
typedef struct {
  const f32 *partial;
  f32 *out;
  int32_t chunks, taps, pc, qc;
  int32_t rows_per_task;
  int32_t group, rp, qcp;
} WReduce;

__attribute__((noinline)) static void wreduce_task(const WReduce *r, int32_t task) {
  const int32_t rows = r->taps * r->pc;
  const int32_t ngroups = (r->taps + r->group - 1) / r->group;
  const int32_t begin = task * r->rows_per_task;
  int32_t end = begin + r->rows_per_task;
  if (end > rows) end = rows;
  const int64_t cstride = (int64_t)ngroups * r->rp * r->qcp;
  double acc[512];
  for (int32_t row = begin; row < end; row++) {
    const int32_t t = row / r->pc, pi = row % r->pc;
    const int32_t g = t / r->group, local = (t - g * r->group) * r->pc + pi;
    const f32 *src = r->partial + ((int64_t)g * r->rp + local) * r->qcp;
    f32 *dst = r->out + (int64_t)row * r->qc;
    for (int32_t q0 = 0; q0 < r->qc; q0 += 512) {
      const int32_t len = r->qc - q0 < 512 ? r->qc - q0 : 512;
      for (int32_t i = 0; i < len; i++) acc[i] = 0;
      for (int32_t c = 0; c < r->chunks; c++) {
        const f32 *s = src + c * cstride + q0;
        for (int32_t i = 0; i < len; i++) acc[i] += s[i];
      }
      for (int32_t i = 0; i < len; i++) dst[q0 + i] = (f32)acc[i];
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* B packing: dst[nb][t][k][nr] = src[toff[t] + k·sk + n·sn] (0 beyond n).                    */
EXPORT(pack_b)
void pack_b(f32 *dst, const f32 *src, int32_t T, const int32_t *toff, int32_t K, int32_t N,
            int32_t sk, int32_t sn, int32_t nr) {
  const int32_t nblocks = (N + nr - 1) / nr;
  for (int32_t nb = 0; nb < nblocks; nb++) {
    for (int32_t t = 0; t < T; t++) {
      const f32 *s = src + toff[t];
      for (int32_t k = 0; k < K; k++) {
        for (int32_t i = 0; i < nr; i++) {
          const int32_t n = nb * nr + i;
          *dst++ = n < N ? s[(int64_t)k * sk + (int64_t)n * sn] : 0.f;
        }
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Instance norm (+ LeakyReLU) over x [B][S][C] (S = d·h·w voxels), per sample and channel.   */
/* Reductions: task (b, chunk) sums its rows in float32 (chunk ≤ 512 rows) and writes the      */
/* float64 partial[b][chunk][2C]; the caller adds the chunks in order.                         */
typedef struct {
  const f32 *x;
  const f32 *dy;
  int32_t batch, s, c, chunk;
  const f32 *mean, *rstd; /* [B][C] */
  const f32 *mg, *mgx;    /* [B][C] (backward) */
  const f32 *slope;       /* 0: no activation, else → the negative slope */
  double *partial;
  f32 *out;
} Norm;

#define NORM_CMAX 4096

static void norm_range(const Norm *p, int32_t task, int32_t *b, int32_t *r0, int32_t *r1, int32_t *k) {
  const int32_t nchunks = (p->s + p->chunk - 1) / p->chunk;
  *b = task / nchunks;
  *k = task % nchunks;
  *r0 = *k * p->chunk;
  *r1 = *r0 + p->chunk < p->s ? *r0 + p->chunk : p->s;
}

/* mode 0: Σx and Σ(x − chunk mean)²; 2: Σg and Σg·x̂ (backward, g = dy·act'(x̂)). */
__attribute__((noinline)) static void norm_stats_task(const Norm *p, int32_t task, int mode) {
  int32_t b, r0, r1, k;
  norm_range(p, task, &b, &r0, &r1, &k);
  const int32_t C = p->c;
  const int32_t nchunks = (p->s + p->chunk - 1) / p->chunk;
  f32 acc0[NORM_CMAX], acc1[NORM_CMAX];
  for (int32_t c = 0; c < C; c++) acc0[c] = acc1[c] = 0.f;
  const f32 *x = p->x + ((int64_t)b * p->s + r0) * C;
  const f32 *mean = p->mean ? p->mean + b * C : 0, *rstd = p->rstd ? p->rstd + b * C : 0;
  if (mode == 0) {
    /* chunk sum, then the squared deviations from the chunk mean (the chunk is in cache) */
    for (int32_t r = r0; r < r1; r++, x += C)
      for (int32_t c = 0; c < C; c++) acc0[c] += x[c];
    const f32 inv = 1.f / (f32)(r1 - r0);
    f32 cm[NORM_CMAX];
    for (int32_t c = 0; c < C; c++) cm[c] = acc0[c] * inv;
    x = p->x + ((int64_t)b * p->s + r0) * C;
    for (int32_t r = r0; r < r1; r++, x += C)
      for (int32_t c = 0; c < C; c++) {
        const f32 v = x[c] - cm[c];
        acc1[c] += v * v;
      }
  } else {
    const f32 *dy = p->dy + ((int64_t)b * p->s + r0) * C;
    const f32 slope = p->slope ? *p->slope : 1.f;
    const int act = p->slope != 0;
    for (int32_t r = r0; r < r1; r++, x += C, dy += C)
      for (int32_t c = 0; c < C; c++) {
        const f32 xh = (x[c] - mean[c]) * rstd[c];
        f32 g = dy[c];
        if (act && !(xh > 0.f)) g *= slope;
        acc0[c] += g;
        acc1[c] += g * xh;
      }
  }
  double *o = p->partial + ((int64_t)b * nchunks + k) * 2 * C;
  for (int32_t c = 0; c < C; c++) {
    o[c] = acc0[c];
    o[C + c] = acc1[c];
  }
}

/* mode 0: out = act((x − mean)·rstd); 1: out = rstd·(g − mg − x̂·mgx). */
__attribute__((noinline)) static void norm_apply_task(const Norm *p, int32_t task, int mode) {
  int32_t b, r0, r1, k;
  norm_range(p, task, &b, &r0, &r1, &k);
  const int32_t C = p->c;
  const int64_t off = ((int64_t)b * p->s + r0) * C;
  const f32 *x = p->x + off;
  f32 *out = p->out + off;
  const f32 *mean = p->mean + b * C, *rstd = p->rstd + b * C;
  const int act = p->slope != 0;
  const f32 slope = act ? *p->slope : 1.f;
  if (mode == 0) {
    for (int32_t r = r0; r < r1; r++, x += C, out += C)
      for (int32_t c = 0; c < C; c++) {
        const f32 v = (x[c] - mean[c]) * rstd[c];
        out[c] = act && !(v > 0.f) ? v * slope : v;
      }
  } else {
    const f32 *dy = p->dy + off;
    const f32 *mg = p->mg + b * C, *mgx = p->mgx + b * C;
    for (int32_t r = r0; r < r1; r++, x += C, out += C, dy += C)
      for (int32_t c = 0; c < C; c++) {
        const f32 xh = (x[c] - mean[c]) * rstd[c];
        f32 g = dy[c];
        if (act && !(xh > 0.f)) g *= slope;
        out[c] = rstd[c] * (g - mg[c] - xh * mgx[c]);
      }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Loss terms on logits [B][N][K] (channels-last rows of K classes).                           */
#define KMAX 256

/* 4-lane versions: four voxels at a time, classes gathered from the channels-last rows. */
static inline v128_t vexp(v128_t x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, wasm_f32x4_splat(-87.33f)), wasm_f32x4_splat(88.72f));
  const v128_t k = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(k, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_add(r, wasm_f32x4_mul(k, wasm_f32x4_splat(2.12194440e-4f)));
  v128_t q = wasm_f32x4_splat(1.9875691500e-4f);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(1.3981999507e-3f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(8.3334519073e-3f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(4.1665795894e-2f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(1.6666665459e-1f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(5.0000001201e-1f));
  const v128_t y = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(q, r), r), r),
                                  wasm_f32x4_splat(1.f));
  const v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(k), wasm_i32x4_splat(127)), 23);
  /* x was clamped to ≥ −87.33, so 2^k stays normal; below that exp is 0 in float32 anyway */
  return wasm_f32x4_mul(y, e);
}

static inline v128_t vlog(v128_t x) {
  v128_t xi = x;
  v128_t e = wasm_i32x4_sub(wasm_u32x4_shr(xi, 23), wasm_i32x4_splat(126));
  v128_t m = wasm_v128_or(wasm_v128_and(xi, wasm_i32x4_splat(0x807fffff)), wasm_i32x4_splat(0x3f000000));
  const v128_t small = wasm_f32x4_lt(m, wasm_f32x4_splat(0.707106781186547524f));
  e = wasm_i32x4_add(e, small); /* true lanes are −1 */
  m = wasm_f32x4_sub(wasm_f32x4_add(m, wasm_v128_and(m, small)), wasm_f32x4_splat(1.f));
  const v128_t z = wasm_f32x4_mul(m, m);
  v128_t y = wasm_f32x4_splat(7.0376836292e-2f);
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(-1.1514610310e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(1.1676998740e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(-1.2420140846e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(1.4249322787e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(-1.6668057665e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(2.0000714765e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(-2.4999993993e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, m), wasm_f32x4_splat(3.3333331174e-1f));
  y = wasm_f32x4_mul(wasm_f32x4_mul(y, m), z);
  const v128_t ef = wasm_f32x4_convert_i32x4(e);
  y = wasm_f32x4_add(y, wasm_f32x4_mul(ef, wasm_f32x4_splat(-2.12194440e-4f)));
  y = wasm_f32x4_sub(y, wasm_f32x4_mul(z, wasm_f32x4_splat(0.5f)));
  return wasm_f32x4_add(wasm_f32x4_add(m, y), wasm_f32x4_mul(ef, wasm_f32x4_splat(0.693359375f)));
}

static inline v128_t gather4(const f32 *p, int32_t K) {
  return wasm_f32x4_make(p[0], p[K], p[2 * K], p[3 * K]);
}

static inline void scatter4(f32 *p, int32_t K, v128_t v) {
  p[0] = wasm_f32x4_extract_lane(v, 0);
  p[K] = wasm_f32x4_extract_lane(v, 1);
  p[2 * K] = wasm_f32x4_extract_lane(v, 2);
  p[3 * K] = wasm_f32x4_extract_lane(v, 3);
}

/* log-softmax of 4 rows (x + l·K, l < 4) · scale into out[K] lanes */
static inline void log_softmax4(const f32 *x, int32_t K, f32 scale, v128_t *out) {
  const v128_t sc = wasm_f32x4_splat(scale);
  v128_t m = wasm_f32x4_splat(-3.4e38f);
  for (int32_t j = 0; j < K; j++) {
    out[j] = wasm_f32x4_mul(gather4(x + j, K), sc);
    m = wasm_f32x4_max(m, out[j]);
  }
  v128_t se = wasm_f32x4_splat(0.f);
  for (int32_t j = 0; j < K; j++) se = wasm_f32x4_add(se, vexp(wasm_f32x4_sub(out[j], m)));
  const v128_t lse = wasm_f32x4_add(m, vlog(se));
  for (int32_t j = 0; j < K; j++) out[j] = wasm_f32x4_sub(out[j], lse);
}

/*
 * Loss descriptor. Ops (row = one voxel's K values):
 *   LSM       x → out1 = log-softmax(x·scale), out2 = its exp        (the teacher's, cached)
 *   DICE_FWD  x = logits → out1 = softmax; partial = [Σp (K), Σp·g (K), Σg (K), Σ −log p_label]
 *   DICE_BWD  x = softmax (from DICE_FWD) → out1 = dL/dlogits
 *   KL_FWD    x = student logits, t = teacher log-probs, pt = teacher probs
 *             → out1 = student log-probs; partial = Σ_v Σ_j pt (lt − lq)
 *   KL_BWD    x = student log-probs (from KL_FWD), t, pt → out1 = dL/ds, out2 = dL/dt
 */
typedef struct {
  const f32 *x;
  const f32 *t;
  const f32 *pt;
  const int32_t *lab;
  int32_t batch, n, k, chunk;
  const double *params; /* LSM/KL: [scale = 1/τ, c]; DICE_BWD: [cDice, cCe, B×K a, B×K gd] */
  double *partial;
  f32 *out1, *out2;
} Loss;

static void loss_range(const Loss *p, int32_t task, int32_t *b, int32_t *v0, int32_t *v1) {
  const int32_t nchunks = (p->n + p->chunk - 1) / p->chunk;
  *b = task / nchunks;
  const int32_t k = task % nchunks;
  *v0 = *b * p->n + k * p->chunk;
  const int32_t end = *b * p->n + p->n;
  *v1 = *v0 + p->chunk < end ? *v0 + p->chunk : end;
}

static inline double hsum(v128_t v) {
  return (double)wasm_f32x4_extract_lane(v, 0) + (double)wasm_f32x4_extract_lane(v, 1) +
         (double)wasm_f32x4_extract_lane(v, 2) + (double)wasm_f32x4_extract_lane(v, 3);
}

/* label masks of four voxels: lanes where lab == j, and where 0 ≤ lab < K */
static inline v128_t label_eq(v128_t labs, int32_t j) {
  return wasm_i32x4_eq(labs, wasm_i32x4_splat(j));
}

/* the remaining 0–3 voxels of a range, through a zero-padded 4-voxel buffer */
#define TAIL_LOAD(dst, src, K, count)                                                            \
  do {                                                                                         \
    for (int32_t _i = 0; _i < 4 * (K); _i++) (dst)[_i] = _i < (count) * (K) ? (src)[_i] : 0.f; \
  } while (0)

__attribute__((noinline)) static void lsm_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const f32 scale = (f32)p->params[0];
  v128_t row[KMAX];
  f32 buf[4 * KMAX], o1[4 * KMAX], o2[4 * KMAX];
  for (int32_t v = v0; v < v1; v += 4) {
    const int32_t cnt = v1 - v < 4 ? v1 - v : 4;
    const f32 *x = p->x + (int64_t)v * K;
    f32 *l = p->out1 + (int64_t)v * K, *e = p->out2 + (int64_t)v * K;
    if (cnt < 4) {
      TAIL_LOAD(buf, x, K, cnt);
      x = buf;
      l = o1;
      e = o2;
    }
    log_softmax4(x, K, scale, row);
    for (int32_t j = 0; j < K; j++) {
      scatter4(l + j, K, row[j]);
      scatter4(e + j, K, vexp(row[j]));
    }
    if (cnt < 4) {
      for (int32_t i = 0; i < cnt * K; i++) {
        p->out1[(int64_t)v * K + i] = o1[i];
        p->out2[(int64_t)v * K + i] = o2[i];
      }
    }
  }
}

__attribute__((noinline)) static void dice_fwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  v128_t vps[KMAX], vin[KMAX], vgs[KMAX], row[KMAX];
  v128_t vce = wasm_f32x4_splat(0.f);
  f32 buf[4 * KMAX], o1[4 * KMAX];
  int32_t lbuf[4];
  for (int32_t j = 0; j < K; j++) vps[j] = vin[j] = vgs[j] = wasm_f32x4_splat(0.f);
  for (int32_t v = v0; v < v1; v += 4) {
    const int32_t cnt = v1 - v < 4 ? v1 - v : 4;
    const f32 *x = p->x + (int64_t)v * K;
    const int32_t *lab = p->lab + v;
    f32 *po = p->out1 + (int64_t)v * K;
    v128_t valid = wasm_i32x4_splat(-1);
    if (cnt < 4) {
      TAIL_LOAD(buf, x, K, cnt);
      for (int32_t i = 0; i < 4; i++) lbuf[i] = i < cnt ? lab[i] : -1;
      x = buf;
      lab = lbuf;
      po = o1;
      valid = wasm_i32x4_lt(wasm_i32x4_make(0, 1, 2, 3), wasm_i32x4_splat(cnt));
    }
    log_softmax4(x, K, 1.f, row);
    const v128_t labs = wasm_v128_load(lab);
    for (int32_t j = 0; j < K; j++) {
      const v128_t mask = label_eq(labs, j);
      const v128_t pj = wasm_v128_and(vexp(row[j]), valid);
      scatter4(po + j, K, pj);
      vps[j] = wasm_f32x4_add(vps[j], pj);
      vin[j] = wasm_f32x4_add(vin[j], wasm_v128_and(pj, mask));
      vgs[j] = wasm_f32x4_add(vgs[j], wasm_v128_and(wasm_f32x4_splat(1.f), mask));
      vce = wasm_f32x4_sub(vce, wasm_v128_and(row[j], mask));
    }
    if (cnt < 4)
      for (int32_t i = 0; i < cnt * K; i++) p->out1[(int64_t)v * K + i] = o1[i];
  }
  double *o = p->partial + (int64_t)task * (3 * K + 1);
  for (int32_t j = 0; j < K; j++) {
    o[j] = hsum(vps[j]);
    o[K + j] = hsum(vin[j]);
    o[2 * K + j] = hsum(vgs[j]);
  }
  o[3 * K] = hsum(vce);
}

__attribute__((noinline)) static void dice_bwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const double *a = p->params + 2 + b * K, *gd = p->params + 2 + p->batch * K + b * K;
  v128_t pr[KMAX], g4[KMAX], va[KMAX], vgd[KMAX];
  f32 buf[4 * KMAX], o1[4 * KMAX];
  int32_t lbuf[4];
  for (int32_t j = 0; j < K; j++) {
    va[j] = wasm_f32x4_splat((f32)a[j]);
    vgd[j] = wasm_f32x4_splat((f32)gd[j]);
  }
  const v128_t vcd = wasm_f32x4_splat((f32)p->params[0]), vcc = wasm_f32x4_splat((f32)p->params[1]);
  for (int32_t v = v0; v < v1; v += 4) {
    const int32_t cnt = v1 - v < 4 ? v1 - v : 4;
    const f32 *x = p->x + (int64_t)v * K;
    const int32_t *lab = p->lab + v;
    f32 *dx = p->out1 + (int64_t)v * K;
    if (cnt < 4) {
      TAIL_LOAD(buf, x, K, cnt);
      for (int32_t i = 0; i < 4; i++) lbuf[i] = i < cnt ? lab[i] : -1;
      x = buf;
      lab = lbuf;
      dx = o1;
    }
    const v128_t labs = wasm_v128_load(lab);
    const v128_t hit = wasm_v128_and(wasm_i32x4_ge(labs, wasm_i32x4_splat(0)),
                                     wasm_i32x4_lt(labs, wasm_i32x4_splat(K)));
    v128_t dot = wasm_f32x4_splat(0.f);
    for (int32_t j = 0; j < K; j++) {
      pr[j] = gather4(x + j, K);
      g4[j] = wasm_f32x4_sub(va[j], wasm_v128_and(vgd[j], label_eq(labs, j)));
      dot = wasm_f32x4_add(dot, wasm_f32x4_mul(pr[j], g4[j]));
    }
    for (int32_t j = 0; j < K; j++) {
      const v128_t ceg = wasm_f32x4_sub(wasm_v128_and(pr[j], hit),
                                        wasm_v128_and(wasm_f32x4_splat(1.f), label_eq(labs, j)));
      const v128_t d = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(vcd, pr[j]), wasm_f32x4_sub(g4[j], dot)),
                                      wasm_f32x4_mul(vcc, ceg));
      scatter4(dx + j, K, d);
    }
    if (cnt < 4)
      for (int32_t i = 0; i < cnt * K; i++) p->out1[(int64_t)v * K + i] = o1[i];
  }
}

__attribute__((noinline)) static void kl_fwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const f32 scale = (f32)p->params[0];
  v128_t lq[KMAX];
  f32 bx[4 * KMAX], bt[4 * KMAX], bp[4 * KMAX], o1[4 * KMAX];
  v128_t vsum = wasm_f32x4_splat(0.f);
  for (int32_t v = v0; v < v1; v += 4) {
    const int32_t cnt = v1 - v < 4 ? v1 - v : 4;
    const f32 *x = p->x + (int64_t)v * K, *t = p->t + (int64_t)v * K, *pt = p->pt + (int64_t)v * K;
    f32 *lo = p->out1 + (int64_t)v * K;
    if (cnt < 4) {
      TAIL_LOAD(bx, x, K, cnt);
      TAIL_LOAD(bt, t, K, cnt);
      TAIL_LOAD(bp, pt, K, cnt); /* pt = 0 on the padding lanes: they add nothing */
      x = bx;
      t = bt;
      pt = bp;
      lo = o1;
    }
    log_softmax4(x, K, scale, lq);
    for (int32_t j = 0; j < K; j++) {
      scatter4(lo + j, K, lq[j]);
      vsum = wasm_f32x4_add(vsum, wasm_f32x4_mul(gather4(pt + j, K),
                                                 wasm_f32x4_sub(gather4(t + j, K), lq[j])));
    }
    if (cnt < 4)
      for (int32_t i = 0; i < cnt * K; i++) p->out1[(int64_t)v * K + i] = o1[i];
  }
  p->partial[task] = hsum(vsum);
}

__attribute__((noinline)) static void kl_bwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const v128_t vc = wasm_f32x4_splat((f32)p->params[1]);
  v128_t lq[KMAX], lt[KMAX], pt[KMAX];
  f32 bx[4 * KMAX], bt[4 * KMAX], bp[4 * KMAX], o1[4 * KMAX], o2[4 * KMAX];
  for (int32_t v = v0; v < v1; v += 4) {
    const int32_t cnt = v1 - v < 4 ? v1 - v : 4;
    const f32 *x = p->x + (int64_t)v * K, *t = p->t + (int64_t)v * K, *ptp = p->pt + (int64_t)v * K;
    f32 *ds = p->out1 + (int64_t)v * K, *dt = p->out2 + (int64_t)v * K;
    if (cnt < 4) {
      TAIL_LOAD(bx, x, K, cnt);
      TAIL_LOAD(bt, t, K, cnt);
      TAIL_LOAD(bp, ptp, K, cnt);
      x = bx;
      t = bt;
      ptp = bp;
      ds = o1;
      dt = o2;
    }
    v128_t kl = wasm_f32x4_splat(0.f);
    for (int32_t j = 0; j < K; j++) {
      lq[j] = gather4(x + j, K);
      lt[j] = gather4(t + j, K);
      pt[j] = gather4(ptp + j, K);
      kl = wasm_f32x4_add(kl, wasm_f32x4_mul(pt[j], wasm_f32x4_sub(lt[j], lq[j])));
    }
    for (int32_t j = 0; j < K; j++) {
      scatter4(ds + j, K, wasm_f32x4_mul(vc, wasm_f32x4_sub(vexp(lq[j]), pt[j])));
      const v128_t d = wasm_f32x4_sub(wasm_f32x4_sub(lt[j], lq[j]), kl);
      scatter4(dt + j, K, wasm_f32x4_mul(wasm_f32x4_mul(vc, pt[j]), d));
    }
    if (cnt < 4) {
      for (int32_t i = 0; i < cnt * K; i++) {
        p->out1[(int64_t)v * K + i] = o1[i];
        p->out2[(int64_t)v * K + i] = o2[i];
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Elementwise: y = leaky(x), y = leaky(a + b), and the gradient dx = y > 0 ? g : g·slope      */
/* (slope ≥ 0, so y > 0 exactly where the input was > 0). Tasks are chunks of `chunk` floats.  */
typedef struct {
  const f32 *a, *b;
  f32 *out;
  int32_t n, chunk;
  f32 slope;
} Elem;

__attribute__((noinline)) static void elem_task(const Elem *e, int32_t task, int mode) {
  const int32_t i0 = task * e->chunk;
  const int32_t i1 = i0 + e->chunk < e->n ? i0 + e->chunk : e->n;
  const v128_t sl = wasm_f32x4_splat(e->slope), zero = wasm_f32x4_splat(0.f);
  int32_t i = i0;
  for (; i + 4 <= i1; i += 4) {
    v128_t x = wasm_v128_load(e->a + i);
    if (mode == 1) x = wasm_f32x4_add(x, wasm_v128_load(e->b + i));
    v128_t y;
    if (mode == 2) {
      const v128_t g = wasm_v128_load(e->b + i);
      y = wasm_v128_bitselect(g, wasm_f32x4_mul(g, sl), wasm_f32x4_gt(x, zero));
    } else {
      y = wasm_v128_bitselect(x, wasm_f32x4_mul(x, sl), wasm_f32x4_gt(x, zero));
    }
    wasm_v128_store(e->out + i, y);
  }
  for (; i < i1; i++) {
    f32 x = e->a[i];
    if (mode == 1) x += e->b[i];
    if (mode == 2) {
      const f32 g = e->b[i];
      e->out[i] = x > 0.f ? g : g * e->slope;
    } else {
      e->out[i] = x > 0.f ? x : x * e->slope;
    }
  }
}

/* Row copy: dst[r·wd + od + i] = src[r·ws + os + i] for i < w (channel slices: concat / split). */
typedef struct {
  const f32 *src;
  f32 *dst;
  int32_t rows, w, ws, os, wd, od, chunk;
} Copy;

__attribute__((noinline)) static void copy_task(const Copy *c, int32_t task) {
  const int32_t r0 = task * c->chunk;
  const int32_t r1 = r0 + c->chunk < c->rows ? r0 + c->chunk : c->rows;
  const f32 *s = c->src + (int64_t)r0 * c->ws + c->os;
  f32 *d = c->dst + (int64_t)r0 * c->wd + c->od;
  const int32_t w = c->w;
  if ((w & 3) == 0) {
    for (int32_t r = r0; r < r1; r++, s += c->ws, d += c->wd)
      for (int32_t i = 0; i < w; i += 4) wasm_v128_store(d + i, wasm_v128_load(s + i));
  } else {
    for (int32_t r = r0; r < r1; r++, s += c->ws, d += c->wd)
      for (int32_t i = 0; i < w; i++) d[i] = s[i];
  }
}

/*
 * AdamW, in place on p, m, v (PyTorch semantics, as optimizer.ts): every op in float32, which
 * rounds exactly as the tf-op chain's double-then-float32 ops do (+, −, ×, ÷ and √ of float32
 * values are exact in double before the single rounding).
 */
typedef struct {
  f32 *p, *m, *v;
  const f32 *g;
  int32_t n, chunk;
  f32 b1, c1, b2, c2, sb, eps, decay, step;
  int32_t decays;
} AdamW;

__attribute__((noinline)) static void adamw_task(const AdamW *a, int32_t task) {
  const int32_t i0 = task * a->chunk;
  const int32_t i1 = i0 + a->chunk < a->n ? i0 + a->chunk : a->n;
  const v128_t b1 = wasm_f32x4_splat(a->b1), c1 = wasm_f32x4_splat(a->c1);
  const v128_t b2 = wasm_f32x4_splat(a->b2), c2 = wasm_f32x4_splat(a->c2);
  const v128_t sb = wasm_f32x4_splat(a->sb), eps = wasm_f32x4_splat(a->eps);
  const v128_t decay = wasm_f32x4_splat(a->decay), step = wasm_f32x4_splat(a->step);
  int32_t i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v128_t g = wasm_v128_load(a->g + i);
    const v128_t m = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a->m + i), b1), wasm_f32x4_mul(g, c1));
    const v128_t v = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a->v + i), b2),
                                    wasm_f32x4_mul(wasm_f32x4_mul(g, g), c2));
    const v128_t denom = wasm_f32x4_add(wasm_f32x4_div(wasm_f32x4_sqrt(v), sb), eps);
    v128_t p = wasm_v128_load(a->p + i);
    if (a->decays) p = wasm_f32x4_mul(p, decay);
    p = wasm_f32x4_sub(p, wasm_f32x4_mul(wasm_f32x4_div(m, denom), step));
    wasm_v128_store(a->m + i, m);
    wasm_v128_store(a->v + i, v);
    wasm_v128_store(a->p + i, p);
  }
  for (; i < i1; i++) {
    const f32 g = a->g[i];
    const f32 m = a->m[i] * a->b1 + g * a->c1;
    const f32 v = a->v[i] * a->b2 + (g * g) * a->c2;
    const f32 denom = __builtin_sqrtf(v) / a->sb + a->eps;
    f32 p = a->p[i];
    if (a->decays) p = p * a->decay;
    a->p[i] = p - (m / denom) * a->step;
    a->m[i] = m;
    a->v[i] = v;
  }
}

/* Column sums of q [rows][c] by chunks of `chunk` rows: partial[task][c] (float64). */
typedef struct {
  const f32 *q;
  int32_t rows, c, chunk;
  double *partial;
} ColSum;

__attribute__((noinline)) static void colsum_task(const ColSum *s, int32_t task) {
  const int32_t r0 = task * s->chunk;
  const int32_t r1 = r0 + s->chunk < s->rows ? r0 + s->chunk : s->rows;
  f32 acc[NORM_CMAX];
  for (int32_t c = 0; c < s->c; c++) acc[c] = 0.f;
  const f32 *q = s->q + (int64_t)r0 * s->c;
  for (int32_t r = r0; r < r1; r++, q += s->c)
    for (int32_t c = 0; c < s->c; c++) acc[c] += q[c];
  double *o = s->partial + (int64_t)task * s->c;
  for (int32_t c = 0; c < s->c; c++) o[c] = acc[c];
}

/* ------------------------------------------------------------------------------------------ */
/* Task dispatch. A job is [op, then the op's descriptor].                                     */
enum {
  OP_ICONV = 1,
  OP_WGRAD = 2,
  OP_WREDUCE = 3,
  OP_NORM_SUM = 10,
  OP_NORM_APPLY = 12,
  OP_NORM_BSTATS = 13,
  OP_NORM_BAPPLY = 14,
  OP_LSM = 19,
  OP_DICE_FWD = 20,
  OP_DICE_BWD = 21,
  OP_KL_FWD = 22,
  OP_KL_BWD = 23,
  OP_LEAKY = 30,
  OP_ADD_LEAKY = 31,
  OP_LEAKY_GRAD = 32,
  OP_COLSUM = 33,
  OP_COPY = 34,
  OP_ADAMW = 35,
  OP_MULTI = 40,
};

EXPORT(run_task)
void run_task(const int32_t *job, int32_t task) {
  const void *d = job + 1;
  switch (job[0]) {
    case OP_ICONV: iconv_task(d, task); break;
    case OP_WGRAD: wgrad_task(d, task); break;
    case OP_WREDUCE: wreduce_task(d, task); break;
    case OP_NORM_SUM: norm_stats_task(d, task, 0); break;
    case OP_NORM_BSTATS: norm_stats_task(d, task, 2); break;
    case OP_NORM_APPLY: norm_apply_task(d, task, 0); break;
    case OP_NORM_BAPPLY: norm_apply_task(d, task, 1); break;
    case OP_LSM: lsm_task(d, task); break;
    case OP_DICE_FWD: dice_fwd_task(d, task); break;
    case OP_DICE_BWD: dice_bwd_task(d, task); break;
    case OP_KL_FWD: kl_fwd_task(d, task); break;
    case OP_KL_BWD: kl_bwd_task(d, task); break;
    case OP_LEAKY: elem_task(d, task, 0); break;
    case OP_ADD_LEAKY: elem_task(d, task, 1); break;
    case OP_LEAKY_GRAD: elem_task(d, task, 2); break;
    case OP_COLSUM: colsum_task(d, task); break;
    case OP_COPY: copy_task(d, task); break;
    case OP_ADAMW: adamw_task(d, task); break;
    case OP_MULTI: {
      /* independent sub-jobs run as one: [count, (job, ntasks) × count], tasks numbered in order */
      const int32_t count = job[1];
      for (int32_t i = 0; i < count; i++) {
        const int32_t *sub = (const int32_t *)job[2 + 2 * i];
        const int32_t n = job[3 + 2 * i];
        if (task < n) {
          run_task(sub, task);
          return;
        }
        task -= n;
      }
      __builtin_trap();
    }
    default: __builtin_trap();
  }
}

EXPORT(set_stack_pointer)
void set_stack_pointer(int32_t sp) {
  __asm__ volatile("local.get %0\n\tglobal.set __stack_pointer" ::"r"(sp));
}
