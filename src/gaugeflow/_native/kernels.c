/* gaugeflow native kernel: sums of so(k) brackets in coordinates, fused per sample.
 *
 *   out[s, r] = sum over terms t with r_t == r of  sign_t * [ x[s, a_t], y[s, b_t] ]
 *
 * x: [N, P, n] (row stride sx elements; the P blocks of n coordinates contiguous), y: [N, Q, n]
 * (row stride sy), out: [N, R, n] contiguous. n = k(k-1)/2 coordinates in row-major upper-triangle
 * order (0,1), (0,2), ..., (1,2), ...: hat(x)_ij = x_c and hat(x)_ji = -x_c for i < j.
 * Bracket coordinates: [X, Y]_ij = (XY)_ij - (XY)_ji for i < j (X, Y antisymmetric).
 *
 * Layout: samples in vector lanes (8 floats or 4 doubles per 32-byte vector), so a k x k product
 * costs about k^3 lane-parallel multiply-adds with no padding of k to the vector width. For a group
 * of samples the coordinates are transposed into lanes (8 x 8 blocks in registers), the blocks are
 * written as dense hat matrices of vectors, each row of S = sum_t sign_t X_a Y_b is accumulated
 * over the terms in JC registers (JC in {4, 8, 10, 12} a compile-time constant, k padded up to it
 * with zero columns; k > 12 in chunks of 8), and the coordinates S_ij - S_ji are transposed back.
 * One buffer per thread and call; the batch is split over OpenMP threads when nthreads > 1 and
 * OpenMP is compiled in. Four instances of the loop keep the first-use compile at a few seconds.
 *
 * Built at first use by gaugeflow/_native/__init__.py; called through ctypes by
 * gaugeflow/algebra/bracket_sums.py, which checks every argument before the call.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static inline void gf_split(int64_t N, int64_t *lo, int64_t *hi)  /* this thread's share of the batch */
{
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    *lo = N * id / nt;
    *hi = N * (id + 1) / nt;
}
#else
static inline void gf_split(int64_t N, int64_t *lo, int64_t *hi) { *lo = 0; *hi = N; }
#endif

#define MAXB 8   /* most blocks in x, y or out */
#define MAXK 32  /* largest k (MAX_K in gaugeflow/_native/__init__.py) */
#define LANES(T) ((int)(32 / sizeof(T)))

typedef float gf_vfloat __attribute__((vector_size(32)));
typedef double gf_vdouble __attribute__((vector_size(32)));
typedef int32_t gf_vi32 __attribute__((vector_size(32)));
typedef int64_t gf_vi64 __attribute__((vector_size(32)));

/* r[j] <- column j of the 8 x 8 block whose rows are r[0..7] (in registers: unpack, shuffle, permute) */
static inline __attribute__((always_inline)) void gf_transpose_float(gf_vfloat *r)
{
    const gf_vi32 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const gf_vi32 s0 = {0, 1, 8, 9, 4, 5, 12, 13}, s1 = {2, 3, 10, 11, 6, 7, 14, 15};
    const gf_vi32 p0 = {0, 1, 2, 3, 8, 9, 10, 11}, p1 = {4, 5, 6, 7, 12, 13, 14, 15};
    gf_vfloat t[8], u[8];
    for (int q = 0; q < 4; ++q) {
        t[2 * q] = __builtin_shuffle(r[2 * q], r[2 * q + 1], lo);
        t[2 * q + 1] = __builtin_shuffle(r[2 * q], r[2 * q + 1], hi);
    }
    for (int q = 0; q < 2; ++q) {
        u[4 * q + 0] = __builtin_shuffle(t[4 * q + 0], t[4 * q + 2], s0);
        u[4 * q + 1] = __builtin_shuffle(t[4 * q + 0], t[4 * q + 2], s1);
        u[4 * q + 2] = __builtin_shuffle(t[4 * q + 1], t[4 * q + 3], s0);
        u[4 * q + 3] = __builtin_shuffle(t[4 * q + 1], t[4 * q + 3], s1);
    }
    for (int q = 0; q < 4; ++q) {
        r[q] = __builtin_shuffle(u[q], u[q + 4], p0);
        r[q + 4] = __builtin_shuffle(u[q], u[q + 4], p1);
    }
}

/* the same for a 4 x 4 block of doubles */
static inline __attribute__((always_inline)) void gf_transpose_double(gf_vdouble *r)
{
    const gf_vi64 lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, s0 = {0, 1, 4, 5}, s1 = {2, 3, 6, 7};
    const gf_vdouble t0 = __builtin_shuffle(r[0], r[1], lo), t1 = __builtin_shuffle(r[0], r[1], hi);
    const gf_vdouble t2 = __builtin_shuffle(r[2], r[3], lo), t3 = __builtin_shuffle(r[2], r[3], hi);
    r[0] = __builtin_shuffle(t0, t2, s0);
    r[2] = __builtin_shuffle(t0, t2, s1);
    r[1] = __builtin_shuffle(t1, t3, s0);
    r[3] = __builtin_shuffle(t1, t3, s1);
}

/* c(i, j) for i < j in the row-major upper triangle */
static inline int gf_coord(int k, int i, int j) { return i * k - i * (i + 1) / 2 + (j - i - 1); }

#define DEFINE_KERNEL(T, NAME)                                                                                 \
typedef T NAME##_vec __attribute__((vector_size(32)));                                               \
                                                                                                     \
/* one group of up to LANES samples starting at s0 (m of them live); JC the row's accumulators */   \
static inline __attribute__((always_inline)) void NAME##_group(                                      \
    int64_t s0, int m, const int K, const int JC, int n, const T *x, int64_t sx, int P, const T *y,  \
    int64_t sy, int Q, T *out, int R, int nterms, const int32_t *tr, const int32_t *ta,              \
    const int32_t *tb, const T *tsg, NAME##_vec *Xs, NAME##_vec *ot, NAME##_vec *ct, NAME##_vec *S)   \
{                                                                                                    \
    const int L = LANES(T), KJ = (K + JC - 1) / JC * JC;  /* row stride: columns padded to the j-chunk */ \
    /* transpose the group's coordinates into lanes (absent lanes zero), then write the hats */      \
    if (m == L) {  /* L x L blocks transposed in registers, the remainder one by one */              \
        for (int src = 0; src < 2; ++src) {                                                          \
            const T *base = src ? y : x;                                                             \
            const int64_t stride = src ? sy : sx;                                                    \
            const int width = src ? Q * n : P * n;                                                   \
            NAME##_vec *dst = ct + (src ? P * n : 0);                                                \
            int c0 = 0;                                                                              \
            for (; c0 + L <= width; c0 += L) {                                                       \
                NAME##_vec blk[LANES(T)];                                                            \
                for (int lane = 0; lane < L; ++lane) memcpy(&blk[lane], base + (s0 + lane) * stride + c0, sizeof blk[0]); \
                gf_transpose_##T(blk);                                                               \
                for (int j = 0; j < L; ++j) dst[c0 + j] = blk[j];                                    \
            }                                                                                        \
            for (int lane = 0; lane < L; ++lane)                                                     \
                for (int c = c0; c < width; ++c) dst[c][lane] = base[(s0 + lane) * stride + c];      \
        }                                                                                            \
    } else {                                                                                         \
        for (int lane = 0; lane < L; ++lane) {                                                       \
            const int live = lane < m;                                                               \
            const T *xr = x + (s0 + (live ? lane : 0)) * sx, *yr = y + (s0 + (live ? lane : 0)) * sy; \
            for (int c = 0; c < P * n; ++c) ct[c][lane] = live ? xr[c] : (T)0;                       \
            for (int c = 0; c < Q * n; ++c) ct[P * n + c][lane] = live ? yr[c] : (T)0;               \
        }                                                                                            \
    }                                                                                                \
    for (int a = 0; a < P + Q; ++a) {                                                                \
        NAME##_vec *X = Xs + a * K * KJ;                                                             \
        const NAME##_vec *v = ct + a * n;                                                            \
        int c = 0;                                                                                   \
        for (int i = 0; i < K; ++i)                                                                  \
            for (int j = i + 1; j < K; ++j, ++c) { X[i * KJ + j] = v[c]; X[j * KJ + i] = -v[c]; }    \
    }                                                                                                \
    for (int r = 0; r < R; ++r) {                                                                    \
        /* S = sum_t sign_t X_a Y_b, row by row: a row's accumulators stay in registers over the terms */ \
        for (int i = 0; i < K; ++i)                                                                  \
            for (int j0 = 0; j0 < K; j0 += JC) {                                                     \
                NAME##_vec acc[JC];                                                                  \
                _Pragma("GCC unroll 16")                                                             \
                for (int j = 0; j < JC; ++j) acc[j] = (NAME##_vec){0};                               \
                for (int t = 0; t < nterms; ++t) {                                                   \
                    if (tr[t] != r) continue;                                                        \
                    const NAME##_vec *X = Xs + ta[t] * K * KJ + i * KJ, *Y = Xs + (P + tb[t]) * K * KJ + j0; \
                    const T sg = tsg[t];                                                             \
                    for (int l = 0; l < K; ++l) {  /* X_ii = 0: l == i adds nothing */               \
                        const NAME##_vec xv = X[l] * sg;                                             \
                        const NAME##_vec *Yl = Y + l * KJ;                                           \
                        _Pragma("GCC unroll 16")                                                     \
                        for (int j = 0; j < JC; ++j) acc[j] += xv * Yl[j];                           \
                    }                                                                                \
                }                                                                                    \
                NAME##_vec *Si = S + i * KJ + j0;                                                    \
                _Pragma("GCC unroll 16")                                                             \
                for (int j = 0; j < JC; ++j) Si[j] = acc[j];                                         \
            }                                                                                        \
        int c = 0;                                                                                   \
        for (int i = 0; i < K; ++i)                                                                  \
            for (int j = i + 1; j < K; ++j, ++c) ot[c] = S[i * KJ + j] - S[j * KJ + i];              \
        int c0 = 0;                                                                                  \
        if (m == L)                                                                                  \
            for (; c0 + L <= n; c0 += L) {                                                           \
                NAME##_vec blk[LANES(T)];                                                            \
                for (int j = 0; j < L; ++j) blk[j] = ot[c0 + j];                                     \
                gf_transpose_##T(blk);                                                               \
                for (int lane = 0; lane < L; ++lane)                                                 \
                    memcpy(out + (s0 + lane) * (int64_t)R * n + (int64_t)r * n + c0, &blk[lane], sizeof blk[0]); \
            }                                                                                        \
        for (int lane = 0; lane < m; ++lane) {                                                       \
            T *o = out + (s0 + lane) * (int64_t)R * n + (int64_t)r * n;                              \
            for (int c = c0; c < n; ++c) o[c] = ot[c][lane];                                         \
        }                                                                                            \
    }                                                                                                \
}                                                                                                    \
                                                                                                     \
static inline __attribute__((always_inline)) void NAME##_range(                                      \
    int64_t lo, int64_t hi, const int K, const int JC, int n, const T *x, int64_t sx, int P,         \
    const T *y, int64_t sy, int Q, T *out, int R, int nterms, const int32_t *tr, const int32_t *ta,  \
    const int32_t *tb, const T *tsg, NAME##_vec *Xs, NAME##_vec *ot, NAME##_vec *ct, NAME##_vec *S)   \
{                                                                                                    \
    /* diagonals and padding columns stay zero */                                                    \
    memset(Xs, 0, sizeof(NAME##_vec) * (size_t)(P + Q) * K * ((K + JC - 1) / JC * JC));              \
    for (int64_t s0 = lo; s0 < hi; s0 += LANES(T)) {                                                 \
        const int m = hi - s0 < LANES(T) ? (int)(hi - s0) : LANES(T);                                \
        NAME##_group(s0, m, K, JC, n, x, sx, P, y, sy, Q, out, R, nterms, tr, ta, tb, tsg, Xs, ot, ct, S); \
    }                                                                                                \
}                                                                                                    \
                                                                                                     \
int NAME(int64_t N, int k, const T *x, int64_t sx, int P, const T *y, int64_t sy, int Q,             \
         T *out, int R, int nterms, const int32_t *tr, const int32_t *ta, const int32_t *tb,         \
         const T *tsg, int nthreads)                                                                 \
{                                                                                                    \
    if (P > MAXB || Q > MAXB || R > MAXB || P < 1 || Q < 1 || R < 1 || k < 2 || nterms < 1) return 1; \
    if (k > MAXK) return 2;                                                                          \
    const int n = k * (k - 1) / 2;                                                                   \
    int failed = 0;                                                                                  \
    (void)nthreads;                                                                                  \
    _Pragma("omp parallel num_threads(nthreads) if(nthreads > 1)")                                   \
    {                                                                                                \
        NAME##_vec *Xs = aligned_alloc(32, sizeof(NAME##_vec) * (size_t)((P + Q + 1) * (k * (k + 8) + n) + n)); \
        /* P + Q hat matrices (k x KJ, KJ <= k + 8), the output coordinates, the transposed inputs, S */ \
        NAME##_vec *ot = Xs + (P + Q) * k * (k + 8), *ct = ot + n, *S = ct + (P + Q) * n;            \
        int64_t lo, hi;                                                                              \
        gf_split(N, &lo, &hi);                                                                       \
        if (!Xs) { _Pragma("omp atomic write") failed = 1; lo = hi = 0; }                            \
        /* JC (the accumulators of a row, a literal in each branch) is what must be a compile-time  \
           constant; k is padded up to it with zero columns */                                       \
        if (k <= 4)       NAME##_range(lo, hi, k, 4, n, x, sx, P, y, sy, Q, out, R, nterms, tr, ta, tb, tsg, Xs, ot, ct, S);  \
        else if (k <= 8 || k > 12) NAME##_range(lo, hi, k, 8, n, x, sx, P, y, sy, Q, out, R, nterms, tr, ta, tb, tsg, Xs, ot, ct, S); \
        else if (k <= 10) NAME##_range(lo, hi, k, 10, n, x, sx, P, y, sy, Q, out, R, nterms, tr, ta, tb, tsg, Xs, ot, ct, S); \
        else              NAME##_range(lo, hi, k, 12, n, x, sx, P, y, sy, Q, out, R, nterms, tr, ta, tb, tsg, Xs, ot, ct, S); \
        free(Xs);                                                                                    \
    }                                                                                                \
    return failed ? 3 : 0;                                                                           \
}

DEFINE_KERNEL(float, gf_so_brackets_f32)
DEFINE_KERNEL(double, gf_so_brackets_f64)


/* ---------------------------------------------------------------------------------------------
 * The outer product of a folded output layer (models/networks.py, MLP.contracted):
 *   u[s, m*H + h] = d[s, m] * z[s, h]                                     (forward)
 *   gd[s, m] = sum_h gu[s, m*H + h] z[s, h],  gz[s, h] = sum_m gu[s, m*H + h] d[s, m]   (backward)
 * d: [N, D] (row stride sd), z: [N, H] (row stride sz), u and gu: [N, D*H] (row stride su / sg),
 * gd: [N, D], gz: [N, H] contiguous. One pass over u or gu instead of PyTorch's broadcast
 * products and reductions, each a full pass over a [N, D*H] temporary.
 */
#define DEFINE_OUTER(T, NAME)                                                                        \
typedef T NAME##_vec __attribute__((vector_size(32)));                                               \
int NAME##_forward(int64_t N, int D, int H, const T *d, int64_t sd, const T *z, int64_t sz,           \
                   T *u, int64_t su, int nthreads)                                                   \
{                                                                                                    \
    (void)nthreads;                                                                                  \
    _Pragma("omp parallel for num_threads(nthreads) if(nthreads > 1) schedule(static)")              \
    for (int64_t s = 0; s < N; ++s) {                                                                \
        const T *ds = d + s * sd, *zs = z + s * sz;                                                  \
        T *us = u + s * su;                                                                          \
        for (int m = 0; m < D; ++m) {                                                                \
            const T dm = ds[m];                                                                      \
            T *row = us + (int64_t)m * H;                                                            \
            for (int h = 0; h < H; ++h) row[h] = dm * zs[h];                                         \
        }                                                                                            \
    }                                                                                                \
    return 0;                                                                                        \
}                                                                                                    \
int NAME##_backward(int64_t N, int D, int H, const T *gu, int64_t sg, const T *d, int64_t sd,         \
                    const T *z, int64_t sz, T *gd, T *gz, int nthreads)                              \
{                                                                                                    \
    (void)nthreads;                                                                                  \
    _Pragma("omp parallel for num_threads(nthreads) if(nthreads > 1) schedule(static)")              \
    for (int64_t s = 0; s < N; ++s) {                                                                \
        const T *gs = gu + s * sg, *ds = d + s * sd, *zs = z + s * sz;                               \
        T *gds = gd + s * D, *gzs = gz + s * H;                                                      \
        for (int h = 0; h < H; ++h) gzs[h] = 0;                                                      \
        for (int m = 0; m < D; ++m) {                                                                \
            const T *row = gs + (int64_t)m * H;                                                      \
            const T dm = ds[m];                                                                      \
            NAME##_vec accv = {0};  /* the dot product in vector lanes: no reassociation flags needed */ \
            int h = 0;                                                                               \
            for (; h + LANES(T) <= H; h += LANES(T)) {                                               \
                NAME##_vec r, zv, gv;                                                                \
                memcpy(&r, row + h, sizeof r);                                                       \
                memcpy(&zv, zs + h, sizeof zv);                                                      \
                memcpy(&gv, gzs + h, sizeof gv);                                                     \
                accv += r * zv;                                                                      \
                gv += r * dm;                                                                        \
                memcpy(gzs + h, &gv, sizeof gv);                                                     \
            }                                                                                        \
            T acc = 0;                                                                               \
            for (int j = 0; j < LANES(T); ++j) acc += accv[j];                                       \
            for (; h < H; ++h) { acc += row[h] * zs[h]; gzs[h] += row[h] * dm; }                     \
            gds[m] = acc;                                                                            \
        }                                                                                            \
    }                                                                                                \
    return 0;                                                                                        \
}

DEFINE_OUTER(float, gf_outer_f32)
DEFINE_OUTER(double, gf_outer_f64)

int gf_abi_version(void) { return 4; }
