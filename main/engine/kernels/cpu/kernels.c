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
#define MR 4
#define NR 8
#define MAXT 27

typedef float f32;

/* ------------------------------------------------------------------------------------------ */
/* Indirect convolution descriptor (all int32 fields; pointers are wasm32 addresses).          */
/*                                                                                            */
/* The work is a grid of points j = (b, jd, jh, jw) with batch × gd × gh × gw points.          */
/* Point j writes output row  out + idx(b, f + step·j) · n  (n channels, padded to NR in B).   */
/* Tap t reads the A row at  coord = alpha·j + beta[t]  (per axis) of A [batch, ad, ah, aw, kc] */
/* or the zero row when the coordinate is outside A.                                           */
/* B is packed as [ceil(n / NR)][T][kc][NR].                                                  */
typedef struct {
  int32_t batch, gd, gh, gw;
  f32 *out;
  int32_t od, oh, ow, n;
  int32_t fd, fh, fw;
  int32_t sd, sh, sw;
  const f32 *a;
  int32_t ad, ah, aw, kc;
  int32_t ald, alh, alw;
  int32_t taps;
  const int32_t *beta; /* [taps][3] */
  const f32 *b;
  const f32 *zero;
  int32_t rows_per_task; /* grid points per task (multiple of MR) */
  int32_t nb_per_task;   /* NR-blocks of n per task */
  const f32 *bias;       /* [n] or 0 */
  int32_t accumulate;    /* 1: add to the existing output */
} IConv;

static inline v128_t madd(v128_t acc, v128_t a, v128_t b) {
  return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b));
}

/* MR × NR micro-kernel over T taps × kc channels; a: [T][MR] row pointers, c: MR row pointers. */
static void ukernel(int32_t T, int32_t kc, const f32 *const *a, const f32 *b, f32 *const *c,
                    int32_t nvalid, int32_t accumulate, const f32 *bias) {
  v128_t c00 = wasm_f32x4_const_splat(0.f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int32_t t = 0; t < T; t++) {
    const f32 *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    a += MR;
    for (int32_t k = 0; k < kc; k++) {
      const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
      b += NR;
      const v128_t v0 = wasm_v128_load32_splat(a0 + k);
      const v128_t v1 = wasm_v128_load32_splat(a1 + k);
      const v128_t v2 = wasm_v128_load32_splat(a2 + k);
      const v128_t v3 = wasm_v128_load32_splat(a3 + k);
      c00 = madd(c00, v0, b0);
      c01 = madd(c01, v0, b1);
      c10 = madd(c10, v1, b0);
      c11 = madd(c11, v1, b1);
      c20 = madd(c20, v2, b0);
      c21 = madd(c21, v2, b1);
      c30 = madd(c30, v3, b0);
      c31 = madd(c31, v3, b1);
    }
  }
  v128_t acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  if (bias) {
    f32 bb[NR];
    for (int32_t i = 0; i < NR; i++) bb[i] = i < nvalid ? bias[i] : 0.f;
    const v128_t bv0 = wasm_v128_load(bb), bv1 = wasm_v128_load(bb + 4);
    for (int32_t r = 0; r < MR; r++) {
      acc[r][0] = wasm_f32x4_add(acc[r][0], bv0);
      acc[r][1] = wasm_f32x4_add(acc[r][1], bv1);
    }
  }
  for (int32_t r = 0; r < MR; r++) {
    f32 *cr = c[r];
    if (nvalid == NR) {
      if (accumulate) {
        acc[r][0] = wasm_f32x4_add(acc[r][0], wasm_v128_load(cr));
        acc[r][1] = wasm_f32x4_add(acc[r][1], wasm_v128_load(cr + 4));
      }
      wasm_v128_store(cr, acc[r][0]);
      wasm_v128_store(cr + 4, acc[r][1]);
    } else {
      f32 tmp[NR];
      wasm_v128_store(tmp, acc[r][0]);
      wasm_v128_store(tmp + 4, acc[r][1]);
      if (accumulate)
        for (int32_t i = 0; i < nvalid; i++) cr[i] += tmp[i];
      else
        for (int32_t i = 0; i < nvalid; i++) cr[i] = tmp[i];
    }
  }
}

static void iconv_task(const IConv *p, int32_t task) {
  const int32_t M = p->batch * p->gd * p->gh * p->gw;
  const int32_t nblocks = (p->n + NR - 1) / NR;
  const int32_t ntn = (nblocks + p->nb_per_task - 1) / p->nb_per_task;
  const int32_t mt = task / ntn, nt = task % ntn;
  const int32_t m_begin = mt * p->rows_per_task;
  int32_t m_end = m_begin + p->rows_per_task;
  if (m_end > M) m_end = M;
  const int32_t nb_begin = nt * p->nb_per_task;
  int32_t nb_end = nb_begin + p->nb_per_task;
  if (nb_end > nblocks) nb_end = nblocks;
  const int32_t T = p->taps;
  const f32 *aptr[MAXT * MR];
  f32 *cptr[MR];
  f32 dummy[NR] __attribute__((aligned(16)));
  /* decode the first point */
  int32_t m = m_begin;
  int32_t jw = m % p->gw, q = m / p->gw;
  int32_t jh = q % p->gh;
  q /= p->gh;
  int32_t jd = q % p->gd, b = q / p->gd;
  const int32_t plane = p->ah * p->aw, vol = p->ad * plane;
  for (; m < m_end; m += MR) {
    const int32_t rows = m_end - m < MR ? m_end - m : MR;
    for (int32_t r = 0; r < MR; r++) {
      if (r < rows) {
        const int32_t od = p->fd + p->sd * jd, oh = p->fh + p->sh * jh, ow = p->fw + p->sw * jw;
        cptr[r] = p->out + ((int64_t)((b * p->od + od) * p->oh + oh) * p->ow + ow) * p->n;
        const int32_t cd = p->ald * jd, ch = p->alh * jh, cw = p->alw * jw;
        const f32 *abase = p->a + (int64_t)b * vol * p->kc;
        for (int32_t t = 0; t < T; t++) {
          const int32_t id = cd + p->beta[3 * t], ih = ch + p->beta[3 * t + 1],
                        iw = cw + p->beta[3 * t + 2];
          const int ok = (uint32_t)id < (uint32_t)p->ad && (uint32_t)ih < (uint32_t)p->ah &&
                         (uint32_t)iw < (uint32_t)p->aw;
          aptr[t * MR + r] = ok ? abase + (int64_t)(id * plane + ih * p->aw + iw) * p->kc : p->zero;
        }
        if (++jw == p->gw) {
          jw = 0;
          if (++jh == p->gh) {
            jh = 0;
            if (++jd == p->gd) {
              jd = 0;
              b++;
            }
          }
        }
      } else {
        cptr[r] = dummy;
        for (int32_t t = 0; t < T; t++) aptr[t * MR + r] = p->zero;
      }
    }
    for (int32_t nb = nb_begin; nb < nb_end; nb++) {
      const int32_t n0 = nb * NR;
      const int32_t nvalid = p->n - n0 < NR ? p->n - n0 : NR;
      f32 *c[MR];
      for (int32_t r = 0; r < MR; r++) c[r] = r < rows ? cptr[r] + n0 : dummy;
      ukernel(T, p->kc, aptr, p->b + (int64_t)nb * T * p->kc * NR, c, nvalid, p->accumulate,
              p->bias ? p->bias + n0 : 0);
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Weight gradient: out[t][pc][qc] = Σ_j P_t(j)[·] ⊗ Q(j)[·] over the grid j (batch included). */
/* Q(j) = q + m·qc with m the linear grid index; P_t(j) is the P row at alpha·j + beta[t]     */
/* (skipped outside P). Tasks = (chunk, tap); each writes partial[chunk][t][pcp][qcp], with    */
/* pcp = pc rounded up to MR and qcp = qc rounded up to NR. wgrad_reduce sums the chunks.      */
typedef struct {
  int32_t batch, gd, gh, gw;
  const f32 *p;
  int32_t pd, ph, pw, pc;
  int32_t ald, alh, alw;
  int32_t taps;
  const int32_t *beta;
  const f32 *q;
  int32_t qc;
  f32 *partial;
  int32_t chunk; /* grid points per chunk */
} WGrad;

#define WCHUNK_MAX 4096

static void wgrad_task(const WGrad *w, int32_t task) {
  const int32_t T = w->taps;
  const int32_t chunk = task / T, t = task % T;
  const int32_t M = w->batch * w->gd * w->gh * w->gw;
  const int32_t m_begin = chunk * w->chunk;
  int32_t m_end = m_begin + w->chunk;
  if (m_end > M) m_end = M;
  const int32_t pcp = (w->pc + MR - 1) / MR * MR, qcp = (w->qc + NR - 1) / NR * NR;
  f32 *outp = w->partial + ((int64_t)chunk * T + t) * pcp * qcp;
  const f32 *pp[WCHUNK_MAX];
  const f32 *qq[WCHUNK_MAX];
  int32_t np = 0;
  int32_t m = m_begin;
  int32_t jw = m % w->gw, q = m / w->gw;
  int32_t jh = q % w->gh;
  q /= w->gh;
  int32_t jd = q % w->gd, b = q / w->gd;
  const int32_t plane = w->ph * w->pw, vol = w->pd * plane;
  const int32_t bd = w->beta[3 * t], bh = w->beta[3 * t + 1], bw = w->beta[3 * t + 2];
  for (; m < m_end; m++) {
    const int32_t id = w->ald * jd + bd, ih = w->alh * jh + bh, iw = w->alw * jw + bw;
    if ((uint32_t)id < (uint32_t)w->pd && (uint32_t)ih < (uint32_t)w->ph &&
        (uint32_t)iw < (uint32_t)w->pw) {
      pp[np] = w->p + ((int64_t)b * vol + id * plane + ih * w->pw + iw) * w->pc;
      qq[np] = w->q + (int64_t)m * w->qc;
      np++;
    }
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
  for (int32_t p0 = 0; p0 < pcp; p0 += MR) {
    for (int32_t q0 = 0; q0 < qcp; q0 += NR) {
      v128_t c00 = wasm_f32x4_const_splat(0.f), c01 = c00, c10 = c00, c11 = c00;
      v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      for (int32_t i = 0; i < np; i++) {
        const f32 *pr = pp[i] + p0, *qr = qq[i] + q0;
        const v128_t b0 = wasm_v128_load(qr), b1 = wasm_v128_load(qr + 4);
        const v128_t v0 = wasm_v128_load32_splat(pr);
        const v128_t v1 = wasm_v128_load32_splat(pr + 1);
        const v128_t v2 = wasm_v128_load32_splat(pr + 2);
        const v128_t v3 = wasm_v128_load32_splat(pr + 3);
        c00 = madd(c00, v0, b0);
        c01 = madd(c01, v0, b1);
        c10 = madd(c10, v1, b0);
        c11 = madd(c11, v1, b1);
        c20 = madd(c20, v2, b0);
        c21 = madd(c21, v2, b1);
        c30 = madd(c30, v3, b0);
        c31 = madd(c31, v3, b1);
      }
      f32 *o = outp + (int64_t)p0 * qcp + q0;
      wasm_v128_store(o, c00);
      wasm_v128_store(o + 4, c01);
      wasm_v128_store(o + qcp, c10);
      wasm_v128_store(o + qcp + 4, c11);
      wasm_v128_store(o + 2 * qcp, c20);
      wasm_v128_store(o + 2 * qcp + 4, c21);
      wasm_v128_store(o + 3 * qcp, c30);
      wasm_v128_store(o + 3 * qcp + 4, c31);
    }
  }
}

/* out[t][pc][qc] = Σ_chunk partial[chunk][t][pcp][qcp], summed in chunk order in float64.   */
/* Tasks split the T·pc rows.                                                                 */
typedef struct {
  const f32 *partial;
  f32 *out;
  int32_t chunks, taps, pc, qc;
  int32_t rows_per_task;
} WReduce;

static void wreduce_task(const WReduce *r, int32_t task) {
  const int32_t pcp = (r->pc + MR - 1) / MR * MR, qcp = (r->qc + NR - 1) / NR * NR;
  const int32_t rows = r->taps * r->pc;
  const int32_t begin = task * r->rows_per_task;
  int32_t end = begin + r->rows_per_task;
  if (end > rows) end = rows;
  const int64_t cstride = (int64_t)r->taps * pcp * qcp;
  double acc[512];
  for (int32_t row = begin; row < end; row++) {
    const int32_t t = row / r->pc, pi = row % r->pc;
    const f32 *src = r->partial + ((int64_t)t * pcp + pi) * qcp;
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
/* B packing: dst[nb][t][k][NR] = src[toff[t] + k·sk + n·sn] (0 beyond n).                    */
EXPORT(pack_b)
void pack_b(f32 *dst, const f32 *src, int32_t T, const int32_t *toff, int32_t K, int32_t N,
            int32_t sk, int32_t sn) {
  const int32_t nblocks = (N + NR - 1) / NR;
  for (int32_t nb = 0; nb < nblocks; nb++) {
    for (int32_t t = 0; t < T; t++) {
      const f32 *s = src + toff[t];
      for (int32_t k = 0; k < K; k++) {
        for (int32_t i = 0; i < NR; i++) {
          const int32_t n = nb * NR + i;
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

/* mode 0: Σx; 1: Σ(x − mean)²; 2: Σg and Σg·x̂ (backward, g = dy·act'(x̂)). */
static void norm_stats_task(const Norm *p, int32_t task, int mode) {
  int32_t b, r0, r1, k;
  norm_range(p, task, &b, &r0, &r1, &k);
  const int32_t C = p->c;
  const int32_t nchunks = (p->s + p->chunk - 1) / p->chunk;
  f32 acc0[NORM_CMAX], acc1[NORM_CMAX];
  for (int32_t c = 0; c < C; c++) acc0[c] = acc1[c] = 0.f;
  const f32 *x = p->x + ((int64_t)b * p->s + r0) * C;
  const f32 *mean = p->mean ? p->mean + b * C : 0, *rstd = p->rstd ? p->rstd + b * C : 0;
  if (mode == 0) {
    for (int32_t r = r0; r < r1; r++, x += C)
      for (int32_t c = 0; c < C; c++) acc0[c] += x[c];
  } else if (mode == 1) {
    for (int32_t r = r0; r < r1; r++, x += C)
      for (int32_t c = 0; c < C; c++) {
        const f32 v = x[c] - mean[c];
        acc0[c] += v * v;
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
static void norm_apply_task(const Norm *p, int32_t task, int mode) {
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
static inline f32 fexp(f32 x) {
  if (x < -87.33f) return 0.f;
  if (x > 88.72f) x = 88.72f;
  const f32 k = __builtin_nearbyintf(x * 1.44269504088896341f);
  const f32 r = x - k * 0.693359375f + k * 2.12194440e-4f;
  f32 q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  const f32 y = q * r * r + r + 1.f;
  union {
    int32_t i;
    f32 f;
  } u;
  u.i = ((int32_t)k + 127) << 23;
  return y * u.f;
}

/* natural log for x ≥ 1e-30 (Cephes logf) */
static inline f32 flog(f32 x) {
  union {
    f32 f;
    int32_t i;
  } u = {x};
  int32_t e = ((u.i >> 23) & 0xff) - 126;
  u.i = (u.i & 0x807fffff) | 0x3f000000;
  f32 m = u.f;
  if (m < 0.707106781186547524f) {
    e -= 1;
    m = m + m - 1.f;
  } else {
    m = m - 1.f;
  }
  const f32 z = m * m;
  f32 y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += (f32)e * -2.12194440e-4f;
  y -= 0.5f * z;
  return m + y + (f32)e * 0.693359375f;
}

#define KMAX 256

/* log-softmax of row x[0..k) · scale into out (max-shifted) */
static inline void log_softmax(const f32 *x, int32_t k, f32 scale, f32 *out) {
  f32 m = -3.4e38f;
  for (int32_t j = 0; j < k; j++) {
    out[j] = x[j] * scale;
    if (out[j] > m) m = out[j];
  }
  f32 se = 0.f;
  for (int32_t j = 0; j < k; j++) se += fexp(out[j] - m);
  const f32 lse = m + flog(se);
  for (int32_t j = 0; j < k; j++) out[j] -= lse;
}

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

typedef struct {
  const f32 *x;       /* logits (Dice) / student (KL) */
  const f32 *t;       /* teacher (KL) */
  const int32_t *lab; /* labels (Dice) */
  int32_t batch, n, k, chunk;
  const double *params; /* Dice bwd: [cDice, cCe, then B×K a, B×K gd]; KL: [invT, c] */
  double *partial;
  f32 *dx, *dt;
} Loss;

static void loss_range(const Loss *p, int32_t task, int32_t *b, int32_t *v0, int32_t *v1) {
  const int32_t nchunks = (p->n + p->chunk - 1) / p->chunk;
  *b = task / nchunks;
  const int32_t k = task % nchunks;
  *v0 = *b * p->n + k * p->chunk;
  const int32_t end = *b * p->n + p->n;
  *v1 = *v0 + p->chunk < end ? *v0 + p->chunk : end;
}

static inline v128_t label_mask(const int32_t *lab, int32_t j) {
  return wasm_i32x4_eq(wasm_v128_load(lab), wasm_i32x4_splat(j));
}

static inline double hsum(v128_t v) {
  return (double)wasm_f32x4_extract_lane(v, 0) + (double)wasm_f32x4_extract_lane(v, 1) +
         (double)wasm_f32x4_extract_lane(v, 2) + (double)wasm_f32x4_extract_lane(v, 3);
}

/* partial[task] = [Σp (K), Σp·g (K), Σg (K), Σ −log p_label] */
static void dice_fwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  double ps[KMAX], in[KMAX], gs[KMAX], ce = 0;
  v128_t vps[KMAX], vin[KMAX], vgs[KMAX], row4[KMAX];
  v128_t vce = wasm_f32x4_splat(0.f);
  f32 row[KMAX];
  for (int32_t j = 0; j < K; j++) {
    ps[j] = in[j] = gs[j] = 0;
    vps[j] = vin[j] = vgs[j] = wasm_f32x4_splat(0.f);
  }
  int32_t v = v0;
  for (; v + 4 <= v1; v += 4) {
    log_softmax4(p->x + (int64_t)v * K, K, 1.f, row4);
    for (int32_t j = 0; j < K; j++) {
      const v128_t mask = label_mask(p->lab + v, j);
      const v128_t pj = vexp(row4[j]);
      vps[j] = wasm_f32x4_add(vps[j], pj);
      vin[j] = wasm_f32x4_add(vin[j], wasm_v128_and(pj, mask));
      vgs[j] = wasm_f32x4_add(vgs[j], wasm_v128_and(wasm_f32x4_splat(1.f), mask));
      vce = wasm_f32x4_sub(vce, wasm_v128_and(row4[j], mask));
    }
  }
  for (; v < v1; v++) {
    log_softmax(p->x + (int64_t)v * K, K, 1.f, row);
    const int32_t lab = p->lab[v];
    for (int32_t j = 0; j < K; j++) ps[j] += fexp(row[j]);
    if ((uint32_t)lab < (uint32_t)K) {
      in[lab] += fexp(row[lab]);
      gs[lab] += 1;
      ce -= row[lab];
    }
  }
  double *o = p->partial + (int64_t)task * (3 * K + 1);
  for (int32_t j = 0; j < K; j++) {
    o[j] = ps[j] + hsum(vps[j]);
    o[K + j] = in[j] + hsum(vin[j]);
    o[2 * K + j] = gs[j] + hsum(vgs[j]);
  }
  o[3 * K] = ce + hsum(vce);
}

static void dice_bwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const double cd = p->params[0], cc = p->params[1];
  const double *a = p->params + 2 + b * K, *gd = p->params + 2 + p->batch * K + b * K;
  f32 row[KMAX];
  double pr[KMAX], gp[KMAX];
  v128_t row4[KMAX], g4[KMAX], va[KMAX], vgd[KMAX];
  for (int32_t j = 0; j < K; j++) {
    va[j] = wasm_f32x4_splat((f32)a[j]);
    vgd[j] = wasm_f32x4_splat((f32)gd[j]);
  }
  const v128_t vcd = wasm_f32x4_splat((f32)cd), vcc = wasm_f32x4_splat((f32)cc);
  int32_t v = v0;
  for (; v + 4 <= v1; v += 4) {
    log_softmax4(p->x + (int64_t)v * K, K, 1.f, row4);
    const v128_t labs = wasm_v128_load(p->lab + v);
    const v128_t hit = wasm_v128_and(wasm_i32x4_ge(labs, wasm_i32x4_splat(0)),
                                     wasm_i32x4_lt(labs, wasm_i32x4_splat(K)));
    v128_t dot = wasm_f32x4_splat(0.f);
    for (int32_t j = 0; j < K; j++) {
      const v128_t mask = wasm_i32x4_eq(labs, wasm_i32x4_splat(j));
      row4[j] = vexp(row4[j]); /* now p_j */
      g4[j] = wasm_f32x4_sub(va[j], wasm_v128_and(vgd[j], mask));
      dot = wasm_f32x4_add(dot, wasm_f32x4_mul(row4[j], g4[j]));
    }
    f32 *o = p->dx + (int64_t)v * K;
    for (int32_t j = 0; j < K; j++) {
      const v128_t mask = wasm_i32x4_eq(labs, wasm_i32x4_splat(j));
      const v128_t pj = row4[j];
      const v128_t ceg = wasm_f32x4_sub(wasm_v128_and(pj, hit), wasm_v128_and(wasm_f32x4_splat(1.f), mask));
      const v128_t d = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(vcd, pj), wasm_f32x4_sub(g4[j], dot)),
                                      wasm_f32x4_mul(vcc, ceg));
      scatter4(o + j, K, d);
    }
  }
  for (; v < v1; v++) {
    log_softmax(p->x + (int64_t)v * K, K, 1.f, row);
    const int32_t lab = p->lab[v];
    const int hit = (uint32_t)lab < (uint32_t)K;
    double dot = 0;
    for (int32_t j = 0; j < K; j++) {
      pr[j] = fexp(row[j]);
      gp[j] = a[j] - (hit && j == lab ? gd[j] : 0);
      dot += pr[j] * gp[j];
    }
    f32 *o = p->dx + (int64_t)v * K;
    for (int32_t j = 0; j < K; j++) {
      const double ceg = pr[j] * (hit ? 1 : 0) - (hit && j == lab ? 1 : 0);
      o[j] = (f32)(cd * pr[j] * (gp[j] - dot) + cc * ceg);
    }
  }
}

/* partial[task] = Σ_v Σ_j p_t (log p_t − log q) */
static void kl_fwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const f32 invT = (f32)p->params[0];
  f32 lt[KMAX], lq[KMAX];
  v128_t lt4[KMAX], lq4[KMAX];
  double sum = 0;
  v128_t vsum = wasm_f32x4_splat(0.f);
  int32_t v = v0;
  for (; v + 4 <= v1; v += 4) {
    log_softmax4(p->t + (int64_t)v * K, K, invT, lt4);
    log_softmax4(p->x + (int64_t)v * K, K, invT, lq4);
    for (int32_t j = 0; j < K; j++)
      vsum = wasm_f32x4_add(vsum, wasm_f32x4_mul(vexp(lt4[j]), wasm_f32x4_sub(lt4[j], lq4[j])));
  }
  for (; v < v1; v++) {
    log_softmax(p->t + (int64_t)v * K, K, invT, lt);
    log_softmax(p->x + (int64_t)v * K, K, invT, lq);
    f32 kl = 0;
    for (int32_t j = 0; j < K; j++) kl += fexp(lt[j]) * (lt[j] - lq[j]);
    sum += kl;
  }
  p->partial[task] = sum + hsum(vsum);
}

static void kl_bwd_task(const Loss *p, int32_t task) {
  int32_t b, v0, v1;
  loss_range(p, task, &b, &v0, &v1);
  const int32_t K = p->k;
  const f32 invT = (f32)p->params[0];
  const double c = p->params[1];
  const v128_t vc = wasm_f32x4_splat((f32)c);
  f32 lt[KMAX], lq[KMAX];
  v128_t lt4[KMAX], lq4[KMAX], pt4[KMAX];
  int32_t v = v0;
  for (; v + 4 <= v1; v += 4) {
    log_softmax4(p->t + (int64_t)v * K, K, invT, lt4);
    log_softmax4(p->x + (int64_t)v * K, K, invT, lq4);
    v128_t kl = wasm_f32x4_splat(0.f);
    for (int32_t j = 0; j < K; j++) {
      pt4[j] = vexp(lt4[j]);
      kl = wasm_f32x4_add(kl, wasm_f32x4_mul(pt4[j], wasm_f32x4_sub(lt4[j], lq4[j])));
    }
    f32 *ds = p->dx + (int64_t)v * K, *dt = p->dt + (int64_t)v * K;
    for (int32_t j = 0; j < K; j++) {
      scatter4(ds + j, K, wasm_f32x4_mul(vc, wasm_f32x4_sub(vexp(lq4[j]), pt4[j])));
      const v128_t d = wasm_f32x4_sub(wasm_f32x4_sub(lt4[j], lq4[j]), kl);
      scatter4(dt + j, K, wasm_f32x4_mul(wasm_f32x4_mul(vc, pt4[j]), d));
    }
  }
  for (; v < v1; v++) {
    log_softmax(p->t + (int64_t)v * K, K, invT, lt);
    log_softmax(p->x + (int64_t)v * K, K, invT, lq);
    f32 kl = 0;
    for (int32_t j = 0; j < K; j++) kl += fexp(lt[j]) * (lt[j] - lq[j]);
    f32 *ds = p->dx + (int64_t)v * K, *dt = p->dt + (int64_t)v * K;
    for (int32_t j = 0; j < K; j++) {
      const f32 pt = fexp(lt[j]);
      ds[j] = (f32)(c * (fexp(lq[j]) - pt));
      dt[j] = (f32)(c * pt * (lt[j] - lq[j] - kl));
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Task dispatch. A job is [op, then the op's descriptor].                                     */
enum {
  OP_ICONV = 1,
  OP_WGRAD = 2,
  OP_WREDUCE = 3,
  OP_NORM_SUM = 10,
  OP_NORM_SQ = 11,
  OP_NORM_APPLY = 12,
  OP_NORM_BSTATS = 13,
  OP_NORM_BAPPLY = 14,
  OP_DICE_FWD = 20,
  OP_DICE_BWD = 21,
  OP_KL_FWD = 22,
  OP_KL_BWD = 23,
};

EXPORT(run_task)
void run_task(const int32_t *job, int32_t task) {
  switch (job[0]) {
    case OP_ICONV:
      iconv_task((const IConv *)(job + 1), task);
      break;
    case OP_WGRAD:
      wgrad_task((const WGrad *)(job + 1), task);
      break;
    case OP_WREDUCE:
      wreduce_task((const WReduce *)(job + 1), task);
      break;
    case OP_NORM_SUM:
      norm_stats_task((const Norm *)(job + 1), task, 0);
      break;
    case OP_NORM_SQ:
      norm_stats_task((const Norm *)(job + 1), task, 1);
      break;
    case OP_NORM_BSTATS:
      norm_stats_task((const Norm *)(job + 1), task, 2);
      break;
    case OP_NORM_APPLY:
      norm_apply_task((const Norm *)(job + 1), task, 0);
      break;
    case OP_NORM_BAPPLY:
      norm_apply_task((const Norm *)(job + 1), task, 1);
      break;
    case OP_DICE_FWD:
      dice_fwd_task((const Loss *)(job + 1), task);
      break;
    case OP_DICE_BWD:
      dice_bwd_task((const Loss *)(job + 1), task);
      break;
    case OP_KL_FWD:
      kl_fwd_task((const Loss *)(job + 1), task);
      break;
    case OP_KL_BWD:
      kl_bwd_task((const Loss *)(job + 1), task);
      break;
    default:
      __builtin_trap();
  }
}

EXPORT(set_stack_pointer)
void set_stack_pointer(int32_t sp) {
  __asm__ volatile("local.get %0\n\tglobal.set __stack_pointer" ::"r"(sp));
}
