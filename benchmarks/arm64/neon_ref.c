/* neon_ref.c - plain C NEON reference kernels for fastbin's three products (AArch64),
 * the yardsticks of `make bench-arm64` (benchmarks/arm64/README.md).
 *
 * Operands follow fastbin.bits: W (n, k) as packed signs, uint64 (n, nw), nw = ceil(k / 64),
 * element t in word t / 64, bit t % 64, bit 1 = -1, padding bits 0; rows are C-contiguous.
 *
 *   ref_binary(a, w, m, n, nw, k, out)  a: packed (m, nw); out int32 (m, n) = k - 2 popcount(a ^ w)
 *   ref_uint8(x, w, m, n, k, nw, out)   x: uint8 (m, k);   out int32 (m, n) = x @ sign(W), exact
 *   ref_float32(x, w, m, n, k, nw, out) x: float32 (m, k); out float32 (m, n) = x @ sign(W)
 *
 * Each takes 2 rows of a/x at a time (one at an odd end), sharing the loads of W and the masks
 * made from it, and 4 rows of W at a time, sharing the loads of the rows of a/x:
 *   binary:  eor + cnt + uadalp into uint16 counters (exact for nw <= 8190 words);
 *   uint8:   dot = rowsum(x) - 2 * S, S = sum of x where the bit is 1: 16 bits of W spread to a
 *            byte mask (tbl + cmtst), then and + uadalp into uint16 counters; with the dot-product
 *            extension (cortex-a76: __ARM_FEATURE_DOTPROD) udot of x with the 0xFF mask gives 255 * S
 *            in uint32 counters (no and);
 *   float32: per 4 elements, the 4 bits moved to the sign position (ushl), masked (and), flipped
 *            into x (eor) and added (fadd): the terms of a plain signed sum, summed in 4 lanes.
 * bench_*(reps, ...) call the kernel reps times (the instruction counts take 2N - N calls).
 * Build: aarch64-linux-gnu-gcc -O3 -mcpu=cortex-a72|cortex-a76 -shared -fPIC. */
#include <arm_neon.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every kernel below is written once for RX rows of the left operand (1, or 2 when m >= 2:
 * the loads of W and the masks made from it are shared by both rows) and 4 rows of W (sharing
 * the loads of each row); RX is a constant where it is called, so the loops over it unroll. */
#define INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- binary */

/* s[i][r] = popcount(a_i ^ w_r) for RX rows a_i (stride nw) and NR = 1 or 4 rows w_r; byte counts
 * summed pairwise into uint16 lanes (uadalp: <= 16 a step, exact for nw <= 8190 words) */
INLINE void bin_pc(int RX, int NR, const uint64_t *a, const uint64_t *w0, int nw, unsigned s[2][4])
{
    const uint64_t *w[4];
    for (int r = 0; r < 4; r++) w[r] = w0 + (size_t)(r < NR ? r : 0) * nw;
    uint16x8_t c[2][4];
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) c[i][r] = vdupq_n_u16(0);
    int t = 0;
    for (; t + 2 <= nw; t += 2) {
        uint64x2_t x[2], y[4];
        for (int i = 0; i < RX; i++) x[i] = vld1q_u64(a + (size_t)i * nw + t);
        for (int r = 0; r < NR; r++) y[r] = vld1q_u64(w[r] + t);
        for (int i = 0; i < RX; i++)
            for (int r = 0; r < NR; r++)
                c[i][r] = vpadalq_u8(c[i][r], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x[i], y[r]))));
    }
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) s[i][r] = vaddlvq_u16(c[i][r]);
    if (t < nw)
        for (int i = 0; i < RX; i++)
            for (int r = 0; r < NR; r++)
                s[i][r] += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(vld1_u64(a + (size_t)i * nw + t),
                                                                          vld1_u64(w[r] + t)))));
}

INLINE void bin_rows(int RX, const uint64_t *a, const uint64_t *w, int n, int nw, int k, int32_t *out)
{
    unsigned s[2][4];
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        bin_pc(RX, 4, a, w + (size_t)j * nw, nw, s);
        for (int i = 0; i < RX; i++) for (int r = 0; r < 4; r++) out[(size_t)i * n + j + r] = k - 2 * (int32_t)s[i][r];
    }
    for (; j < n; j++) {
        bin_pc(RX, 1, a, w + (size_t)j * nw, nw, s);
        for (int i = 0; i < RX; i++) out[(size_t)i * n + j] = k - 2 * (int32_t)s[i][0];
    }
}

void ref_binary(const uint64_t *a, const uint64_t *w, int m, int n, int nw, int k, int32_t *out)
{
    int i = 0;
    for (; i + 2 <= m; i += 2) bin_rows(2, a + (size_t)i * nw, w, n, nw, k, out + (size_t)i * n);
    if (i < m) bin_rows(1, a + (size_t)i * nw, w, n, nw, k, out + (size_t)i * n);
}

/* ---------------------------------------------------------------- uint8 */

/* 128 bits of a row of W (2 words; 1 word and zeros at an odd end) */
INLINE uint8x16_t w128(const uint64_t *w, int t, int nw)
{
    if (t + 2 <= nw) return vreinterpretq_u8_u64(vld1q_u64(w + t));
    return vreinterpretq_u8_u64(vcombine_u64(vld1_u64(w + t), vdup_n_u64(0)));
}

#if defined(__ARM_FEATURE_DOTPROD)
typedef uint32x4_t u8acc;  /* udot with the 0xFF mask: 255 * x per selected byte, <= 260100 a chunk a lane */
#define U8_BLOCK 8192
#define U8_ZERO() vdupq_n_u32(0)
#define U8_ADD(acc, x, mask) vdotq_u32((acc), (x), (mask))
#define U8_SUM(acc) vaddlvq_u32(acc)
#define U8_SCALE 255
#else
typedef uint16x8_t u8acc;  /* and + uadalp: two bytes per uint16 lane, <= 510 a chunk */
#define U8_BLOCK 128
#define U8_ZERO() vdupq_n_u16(0)
#define U8_ADD(acc, x, mask) vpadalq_u8((acc), vandq_u8((x), (mask)))
#define U8_SUM(acc) vaddlvq_u16(acc)
#define U8_SCALE 1
#endif

/* S[i][r] = sum of x_i[t] where bit t of w_r is 1, for RX rows x_i (stride xstride, padded to
 * whole chunks of 16 bytes: k16 chunks) and NR = 1 or 4 rows w_r. 16 bits of W become a byte
 * mask by tbl (spreading byte 2q and 2q+1 of 128 bits of W over 8 lanes each) and cmtst. */
INLINE void u8_masked(int RX, int NR, const uint8_t *xs, size_t xstride, int k16, const uint64_t *w0, int nw,
                      uint32_t S[2][4])
{
    static const uint8_t idx0_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t bit_b[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t idx0 = vld1q_u8(idx0_b), bitv = vld1q_u8(bit_b), two = vdupq_n_u8(2);
    const uint64_t *w[4];
    for (int r = 0; r < 4; r++) w[r] = w0 + (size_t)(r < NR ? r : 0) * nw;
    uint64_t sum[2][4] = {{0}};
    int c = 0;
    while (c < k16) {
        int end = k16 - c > U8_BLOCK ? c + U8_BLOCK : k16;
        u8acc acc[2][4];
        for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = U8_ZERO();
        while (c < end) {  /* 8 chunks (128 elements: 2 words of W) per load of W; c % 8 == 0 here */
            uint8x16_t v[4];
            for (int r = 0; r < NR; r++) v[r] = w128(w[r], c / 4, nw);
            uint8x16_t idx = idx0;
            int stop = end - c > 8 ? c + 8 : end;
            for (; c < stop; c++, idx = vaddq_u8(idx, two)) {
                uint8x16_t x[2], mask[4];
                for (int i = 0; i < RX; i++) x[i] = vld1q_u8(xs + i * xstride + 16 * (size_t)c);
                for (int r = 0; r < NR; r++) mask[r] = vtstq_u8(vqtbl1q_u8(v[r], idx), bitv);
                for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = U8_ADD(acc[i][r], x[i], mask[r]);
            }
        }
        for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) sum[i][r] += U8_SUM(acc[i][r]);
    }
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) S[i][r] = (uint32_t)(sum[i][r] / U8_SCALE);
}

/* the row sum of x (k bytes) */
INLINE uint32_t u8_rowsum(const uint8_t *x, int k)
{
    uint32x4_t acc = vdupq_n_u32(0);
    int t = 0;
    for (; t + 16 <= k; t += 16) acc = vpadalq_u16(acc, vpaddlq_u8(vld1q_u8(x + t)));
    uint32_t s = vaddvq_u32(acc);
    for (; t < k; t++) s += x[t];
    return s;
}

INLINE void u8_rows(int RX, const uint8_t *x, size_t xstride, const uint8_t *xs, size_t xsstride, int chunks,
                    const uint64_t *w, int n, int k, int nw, int32_t *out)
{
    int32_t total[2];
    for (int i = 0; i < RX; i++) total[i] = (int32_t)u8_rowsum(x + i * xstride, k);
    uint32_t S[2][4];
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        u8_masked(RX, 4, xs, xsstride, chunks, w + (size_t)j * nw, nw, S);
        for (int i = 0; i < RX; i++) for (int r = 0; r < 4; r++) out[(size_t)i * n + j + r] = total[i] - 2 * (int32_t)S[i][r];
    }
    for (; j < n; j++) {
        u8_masked(RX, 1, xs, xsstride, chunks, w + (size_t)j * nw, nw, S);
        for (int i = 0; i < RX; i++) out[(size_t)i * n + j] = total[i] - 2 * (int32_t)S[i][0];
    }
}

static void u8_bits(const uint8_t *x, const uint64_t *w, int m, int n, int k, int nw, int32_t *out)
{
    int chunks = (k + 15) / 16;
    if (k % 16) {  /* rows that do not end on a chunk of 16 are copied, zero-padded (the tests' shapes) */
        uint8_t *pad = calloc((size_t)chunks, 16);
        for (int i = 0; i < m; i++) {
            memcpy(pad, x + (size_t)i * k, (size_t)k);
            u8_rows(1, x + (size_t)i * k, k, pad, 0, chunks, w, n, k, nw, out + (size_t)i * n);
        }
        free(pad);
        return;
    }
    int i = 0;
    for (; i + 2 <= m; i += 2)
        u8_rows(2, x + (size_t)i * k, k, x + (size_t)i * k, k, chunks, w, n, k, nw, out + (size_t)i * n);
    if (i < m) u8_rows(1, x + (size_t)i * k, k, x + (size_t)i * k, k, chunks, w, n, k, nw, out + (size_t)i * n);
}

/* ---------------------------------------------------------------- float32 */

/* s[i][r] = sum_t x_i[t] * (bit t of w_r ? -1 : +1) for RX rows x_i (stride k) and NR = 1 or 4
 * rows w_r: per 4 elements the 4 bits are shifted to the sign position (ushl), masked (and),
 * flipped into x (eor) and added (fadd) */
INLINE void f32_dot(int RX, int NR, const float *x, int k, const uint64_t *w0, int nw, float s[2][4])
{
    static const int32_t sh_b[4] = {31, 30, 29, 28};
    const uint32x4_t signbit = vdupq_n_u32(0x80000000u);
    const int32x4_t four = vdupq_n_s32(4);
    const uint32_t *b[4];
    for (int r = 0; r < 4; r++) b[r] = (const uint32_t *)(w0 + (size_t)(r < NR ? r : 0) * nw);
    float32x4_t acc[2][4];
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = vdupq_n_f32(0);
    int k4 = k / 4, g = 0;
    for (int h = 0; g < k4; h++) {  /* 32 bits of each row of W: 8 groups of 4 elements */
        uint32x4_t u[4];
        for (int r = 0; r < NR; r++) u[r] = vdupq_n_u32(b[r][h]);
        int32x4_t sh = vld1q_s32(sh_b);
        int stop = k4 - g > 8 ? g + 8 : k4;
        for (; g < stop; g++, sh = vsubq_s32(sh, four)) {
            uint32x4_t xv[2], flip[4];
            for (int i = 0; i < RX; i++) xv[i] = vreinterpretq_u32_f32(vld1q_f32(x + (size_t)i * k + 4 * g));
            for (int r = 0; r < NR; r++) flip[r] = vandq_u32(vshlq_u32(u[r], sh), signbit);
            for (int i = 0; i < RX; i++)
                for (int r = 0; r < NR; r++)
                    acc[i][r] = vaddq_f32(acc[i][r], vreinterpretq_f32_u32(veorq_u32(xv[i], flip[r])));
        }
    }
    /* (no loop inside these two: a loop there keeps acc in memory, stored at every step) */
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) s[i][r] = vaddvq_f32(acc[i][r]);
    for (int t = 4 * k4; t < k; t++)  /* a tail of 1-3 elements */
        for (int i = 0; i < RX; i++)
            for (int r = 0; r < NR; r++)
                s[i][r] += (b[r][t / 32] >> (t % 32)) & 1 ? -x[(size_t)i * k + t] : x[(size_t)i * k + t];
}

INLINE void f32_rows(int RX, const float *x, const uint64_t *w, int n, int k, int nw, float *out)
{
    float s[2][4];
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        f32_dot(RX, 4, x, k, w + (size_t)j * nw, nw, s);
        for (int i = 0; i < RX; i++) for (int r = 0; r < 4; r++) out[(size_t)i * n + j + r] = s[i][r];
    }
    for (; j < n; j++) {
        f32_dot(RX, 1, x, k, w + (size_t)j * nw, nw, s);
        for (int i = 0; i < RX; i++) out[(size_t)i * n + j] = s[i][0];
    }
}

static void f32_bits(const float *x, const uint64_t *w, int m, int n, int k, int nw, float *out)
{
    int i = 0;
    for (; i + 2 <= m; i += 2) f32_rows(2, x + (size_t)i * k, w, n, k, nw, out + (size_t)i * n);
    if (i < m) f32_rows(1, x + (size_t)i * k, w, n, k, nw, out + (size_t)i * n);
}

/* ---------------------------------------------------------------- many rows: W unpacked once */

/* From UNPACK_MIN_ROWS rows of x on, W is unpacked once per call (counted) and the rows of x meet
 * it in register blocks of 4 rows of x by 4 rows of W (16 accumulators):
 *   uint8:   W as byte masks (0xFF where the bit is 1), S by and + uadalp (udot on cortex-a76);
 *   float32: W as ±1.0f, the dots by fmla (x * ±1 exact, so the same terms as a signed sum). */
#define UNPACK_MIN_ROWS 8

/* the byte masks of W (n, k16 * 16), zero past k */
static uint8_t *u8_unpack(const uint64_t *w, int n, int k16, int nw)
{
    static const uint8_t idx0_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t bit_b[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t idx0 = vld1q_u8(idx0_b), bitv = vld1q_u8(bit_b), two = vdupq_n_u8(2);
    uint8_t *masks = aligned_alloc(64, ((size_t)n * k16 * 16 + 63) / 64 * 64);
    for (int j = 0; j < n; j++) {
        uint8_t *row = masks + (size_t)j * k16 * 16;
        for (int c = 0; c < k16; c += 8) {
            uint8x16_t v = w128(w + (size_t)j * nw, c / 4, nw), idx = idx0;
            for (int q = c; q < c + 8 && q < k16; q++, idx = vaddq_u8(idx, two))
                vst1q_u8(row + 16 * (size_t)q, vtstq_u8(vqtbl1q_u8(v, idx), bitv));
        }
    }
    return masks;
}

INLINE void u8_block(int RX, int NR, const uint8_t *x, int k, const uint8_t *masks, int k16, int32_t total[4],
                     int32_t *out, int n)
{
    uint64_t sum[4][4] = {{0}};
    int c = 0;
    while (c < k16) {
        int end = k16 - c > U8_BLOCK ? c + U8_BLOCK : k16;
        u8acc acc[4][4];
        for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = U8_ZERO();
        for (; c < end; c++) {
            uint8x16_t xv[4], mv[4];
            for (int i = 0; i < RX; i++) xv[i] = vld1q_u8(x + (size_t)i * k + 16 * (size_t)c);
            for (int r = 0; r < NR; r++) mv[r] = vld1q_u8(masks + ((size_t)r * k16 + c) * 16);
            for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = U8_ADD(acc[i][r], xv[i], mv[r]);
        }
        for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) sum[i][r] += U8_SUM(acc[i][r]);
    }
    for (int i = 0; i < RX; i++)
        for (int r = 0; r < NR; r++) out[(size_t)i * n + r] = total[i] - 2 * (int32_t)(sum[i][r] / U8_SCALE);
}

INLINE void u8_panel(int RX, const uint8_t *x, const uint8_t *masks, int n, int k, int k16, int32_t *out)
{
    int32_t total[4];
    for (int i = 0; i < RX; i++) total[i] = (int32_t)u8_rowsum(x + (size_t)i * k, k);
    int j = 0;
    for (; j + 4 <= n; j += 4) u8_block(RX, 4, x, k, masks + (size_t)j * k16 * 16, k16, total, out + j, n);
    for (; j < n; j++) u8_block(RX, 1, x, k, masks + (size_t)j * k16 * 16, k16, total, out + j, n);
}

void ref_uint8(const uint8_t *x, const uint64_t *w, int m, int n, int k, int nw, int32_t *out)
{
    if (m < UNPACK_MIN_ROWS || k % 16) { u8_bits(x, w, m, n, k, nw, out); return; }
    int k16 = k / 16;
    uint8_t *masks = u8_unpack(w, n, k16, nw);
    int i = 0;
    for (; i + 4 <= m; i += 4) u8_panel(4, x + (size_t)i * k, masks, n, k, k16, out + (size_t)i * n);
    for (; i < m; i++) u8_panel(1, x + (size_t)i * k, masks, n, k, k16, out + (size_t)i * n);
    free(masks);
}

/* the ±1.0f rows of W (n, k) */
static float *f32_unpack(const uint64_t *w, int n, int k, int nw)
{
    static const int32_t sh_b[4] = {31, 30, 29, 28};
    const uint32x4_t signbit = vdupq_n_u32(0x80000000u), one = vdupq_n_u32(0x3f800000u);
    const int32x4_t four = vdupq_n_s32(4);
    float *signs = aligned_alloc(64, ((size_t)n * k * 4 + 63) / 64 * 64);
    int k4 = k / 4;
    for (int j = 0; j < n; j++) {
        const uint32_t *b = (const uint32_t *)(w + (size_t)j * nw);
        float *row = signs + (size_t)j * k;
        for (int g = 0; g < k4; g += 8) {
            uint32x4_t u = vdupq_n_u32(b[g / 8]);
            int32x4_t sh = vld1q_s32(sh_b);
            for (int q = g; q < g + 8 && q < k4; q++, sh = vsubq_s32(sh, four))
                vst1q_f32(row + 4 * q, vreinterpretq_f32_u32(vorrq_u32(one, vandq_u32(vshlq_u32(u, sh), signbit))));
        }
        for (int t = 4 * k4; t < k; t++) row[t] = (b[t / 32] >> (t % 32)) & 1 ? -1.0f : 1.0f;
    }
    return signs;
}

INLINE void f32_block(int RX, int NR, const float *x, int k, const float *signs, float *out, int n)
{
    float32x4_t acc[4][4];
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = vdupq_n_f32(0);
    int k4 = k / 4;
    for (int g = 0; g < k4; g++) {
        float32x4_t xv[4], sv[4];
        for (int i = 0; i < RX; i++) xv[i] = vld1q_f32(x + (size_t)i * k + 4 * g);
        for (int r = 0; r < NR; r++) sv[r] = vld1q_f32(signs + (size_t)r * k + 4 * g);
        for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) acc[i][r] = vfmaq_f32(acc[i][r], xv[i], sv[r]);
    }
    float s[4][4];
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) s[i][r] = vaddvq_f32(acc[i][r]);
    for (int t = 4 * k4; t < k; t++)  /* a tail of 1-3 elements */
        for (int i = 0; i < RX; i++)
            for (int r = 0; r < NR; r++) s[i][r] += x[(size_t)i * k + t] * signs[(size_t)r * k + t];
    for (int i = 0; i < RX; i++) for (int r = 0; r < NR; r++) out[(size_t)i * n + r] = s[i][r];
}

INLINE void f32_panel(int RX, const float *x, const float *signs, int n, int k, float *out)
{
    int j = 0;
    for (; j + 4 <= n; j += 4) f32_block(RX, 4, x, k, signs + (size_t)j * k, out + j, n);
    for (; j < n; j++) f32_block(RX, 1, x, k, signs + (size_t)j * k, out + j, n);
}

void ref_float32(const float *x, const uint64_t *w, int m, int n, int k, int nw, float *out)
{
    if (m < UNPACK_MIN_ROWS) { f32_bits(x, w, m, n, k, nw, out); return; }
    float *signs = f32_unpack(w, n, k, nw);
    int i = 0;
    for (; i + 4 <= m; i += 4) f32_panel(4, x + (size_t)i * k, signs, n, k, out + (size_t)i * n);
    for (; i < m; i++) f32_panel(1, x + (size_t)i * k, signs, n, k, out + (size_t)i * n);
    free(signs);
}

/* ---------------------------------------------------------------- the timed loops */

#define BARRIER() __asm__ volatile("" ::: "memory")

void bench_binary(long reps, const uint64_t *a, const uint64_t *w, int m, int n, int nw, int k, int32_t *out)
{
    for (long r = 0; r < reps; r++) { ref_binary(a, w, m, n, nw, k, out); BARRIER(); }
}

void bench_uint8(long reps, const uint8_t *x, const uint64_t *w, int m, int n, int k, int nw, int32_t *out)
{
    for (long r = 0; r < reps; r++) { ref_uint8(x, w, m, n, k, nw, out); BARRIER(); }
}

void bench_float32(long reps, const float *x, const uint64_t *w, int m, int n, int k, int nw, float *out)
{
    for (long r = 0; r < reps; r++) { ref_float32(x, w, m, n, k, nw, out); BARRIER(); }
}
