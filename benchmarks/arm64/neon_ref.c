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
 * Each takes one row of a/x at a time and 4 rows of W together, sharing the loads of the row:
 *   binary:  eor + cnt + add into byte counters (<= 31 steps of 2 words before a byte could overflow);
 *   uint8:   dot = rowsum(x) - 2 * S, S = sum of x where the bit is 1: 16 bits of W spread to a
 *            byte mask (tbl + cmtst), then and + uadalp into uint16 counters; with the dot-product
 *            extension (cortex-a76: __ARM_FEATURE_DOTPROD) udot of x with the 0xFF mask gives 255 * S
 *            in uint32 counters (no and);
 *   float32: per 4 elements, the 4 bits moved to the sign position (ushl), masked (and), flipped
 *            into x (eor) and added (fadd): a sign-flip add, the same sums as a plain signed sum.
 * bench_*(reps, ...) call the kernel reps times (the instruction counts take 2N - N calls).
 * Build: aarch64-linux-gnu-gcc -O3 -mcpu=cortex-a72|cortex-a76 -shared -fPIC. */
#include <arm_neon.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- binary */

static inline unsigned bin_pc1(const uint64_t *a, const uint64_t *w, int nw)
{
    unsigned s = 0;
    int t = 0;
    while (t + 2 <= nw) {
        int end = nw - t > 62 ? t + 62 : nw;
        uint8x16_t c = vdupq_n_u8(0);
        for (; t + 2 <= end; t += 2)
            c = vaddq_u8(c, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(a + t), vld1q_u64(w + t)))));
        s += vaddlvq_u8(c);
    }
    if (t < nw)
        s += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(vld1_u64(a + t), vld1_u64(w + t)))));
    return s;
}

static inline void bin_pc4(const uint64_t *a, const uint64_t *w0, int nw, unsigned s[4])
{
    const uint64_t *w1 = w0 + nw, *w2 = w1 + nw, *w3 = w2 + nw;
    unsigned s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int t = 0;
    while (t + 2 <= nw) {
        int end = nw - t > 62 ? t + 62 : nw;
        uint8x16_t c0 = vdupq_n_u8(0), c1 = c0, c2 = c0, c3 = c0;
        for (; t + 2 <= end; t += 2) {
            uint64x2_t x = vld1q_u64(a + t);
            c0 = vaddq_u8(c0, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x, vld1q_u64(w0 + t)))));
            c1 = vaddq_u8(c1, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x, vld1q_u64(w1 + t)))));
            c2 = vaddq_u8(c2, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x, vld1q_u64(w2 + t)))));
            c3 = vaddq_u8(c3, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x, vld1q_u64(w3 + t)))));
        }
        s0 += vaddlvq_u8(c0); s1 += vaddlvq_u8(c1); s2 += vaddlvq_u8(c2); s3 += vaddlvq_u8(c3);
    }
    if (t < nw) {
        uint64x1_t x = vld1_u64(a + t);
        s0 += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(x, vld1_u64(w0 + t)))));
        s1 += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(x, vld1_u64(w1 + t)))));
        s2 += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(x, vld1_u64(w2 + t)))));
        s3 += vaddv_u8(vcnt_u8(vreinterpret_u8_u64(veor_u64(x, vld1_u64(w3 + t)))));
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
}

void ref_binary(const uint64_t *a, const uint64_t *w, int m, int n, int nw, int k, int32_t *out)
{
    for (int i = 0; i < m; i++, a += nw, out += n) {
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            unsigned s[4];
            bin_pc4(a, w + (size_t)j * nw, nw, s);
            for (int r = 0; r < 4; r++) out[j + r] = k - 2 * (int32_t)s[r];
        }
        for (; j < n; j++) out[j] = k - 2 * (int32_t)bin_pc1(a, w + (size_t)j * nw, nw);
    }
}

/* ---------------------------------------------------------------- uint8 */

/* 128 bits of a row of W (2 words; 1 word and zeros at an odd end) */
static inline uint8x16_t w128(const uint64_t *w, int t, int nw)
{
    if (t + 2 <= nw) return vreinterpretq_u8_u64(vld1q_u64(w + t));
    return vreinterpretq_u8_u64(vcombine_u64(vld1_u64(w + t), vdup_n_u64(0)));
}

/* the 16 bits of chunk q (0..7) of a 128-bit vector of W as a byte mask (0xFF where the bit is 1) */
#define U8_MASK(wv, idx, bitv) vtstq_u8(vqtbl1q_u8((wv), (idx)), (bitv))

/* S[r] = sum of x[t] where bit t of row r is 1, for nr = 1 or 4 rows of W; x padded to whole
 * chunks of 16 (xs), k16 = number of chunks */
static inline void u8_masked4(const uint8_t *xs, int k16, const uint64_t *w0, int nw, int nr, uint32_t S[4])
{
    static const uint8_t idx0_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t bit_b[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t idx0 = vld1q_u8(idx0_b), bitv = vld1q_u8(bit_b), two = vdupq_n_u8(2);
    const uint64_t *w1 = w0 + (nr > 1 ? nw : 0), *w2 = w1 + (nr > 1 ? nw : 0), *w3 = w2 + (nr > 1 ? nw : 0);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int c = 0;
#if defined(__ARM_FEATURE_DOTPROD)
    /* udot with the 0xFF mask: 255 * x per selected byte, 4 bytes per uint32 lane: <= 260100 a chunk */
    const int block = 8192;
#else
    /* uadalp: two bytes per uint16 lane, <= 510 a chunk */
    const int block = 128;
#endif
    while (c < k16) {
        int end = k16 - c > block ? c + block : k16;
#if defined(__ARM_FEATURE_DOTPROD)
        uint32x4_t a0 = vdupq_n_u32(0), a1 = a0, a2 = a0, a3 = a0;
#else
        uint16x8_t a0 = vdupq_n_u16(0), a1 = a0, a2 = a0, a3 = a0;
#endif
        while (c < end) {  /* 8 chunks (128 elements, 2 words of W) per load of W */
            int t = c / 4;  /* word of W holding chunk c (c is a multiple of 8 here) */
            uint8x16_t v0 = w128(w0, t, nw), v1 = w128(w1, t, nw), v2 = w128(w2, t, nw), v3 = w128(w3, t, nw);
            uint8x16_t idx = idx0;
            int stop = end - c > 8 ? c + 8 : end;
            for (; c < stop; c++, idx = vaddq_u8(idx, two)) {
                uint8x16_t x = vld1q_u8(xs + 16 * (size_t)c);
#if defined(__ARM_FEATURE_DOTPROD)
                a0 = vdotq_u32(a0, x, U8_MASK(v0, idx, bitv));
                a1 = vdotq_u32(a1, x, U8_MASK(v1, idx, bitv));
                a2 = vdotq_u32(a2, x, U8_MASK(v2, idx, bitv));
                a3 = vdotq_u32(a3, x, U8_MASK(v3, idx, bitv));
#else
                a0 = vpadalq_u8(a0, vandq_u8(x, U8_MASK(v0, idx, bitv)));
                a1 = vpadalq_u8(a1, vandq_u8(x, U8_MASK(v1, idx, bitv)));
                a2 = vpadalq_u8(a2, vandq_u8(x, U8_MASK(v2, idx, bitv)));
                a3 = vpadalq_u8(a3, vandq_u8(x, U8_MASK(v3, idx, bitv)));
#endif
            }
        }
#if defined(__ARM_FEATURE_DOTPROD)
        s0 += vaddlvq_u32(a0); s1 += vaddlvq_u32(a1); s2 += vaddlvq_u32(a2); s3 += vaddlvq_u32(a3);
#else
        s0 += vaddlvq_u16(a0); s1 += vaddlvq_u16(a1); s2 += vaddlvq_u16(a2); s3 += vaddlvq_u16(a3);
#endif
    }
#if defined(__ARM_FEATURE_DOTPROD)
    s0 /= 255; s1 /= 255; s2 /= 255; s3 /= 255;
#endif
    S[0] = (uint32_t)s0; S[1] = (uint32_t)s1; S[2] = (uint32_t)s2; S[3] = (uint32_t)s3;
}

/* the row sum of x (k bytes) */
static inline uint32_t u8_rowsum(const uint8_t *x, int k)
{
    uint32x4_t acc = vdupq_n_u32(0);
    int t = 0;
    for (; t + 16 <= k; t += 16) acc = vpadalq_u16(acc, vpaddlq_u8(vld1q_u8(x + t)));
    uint32_t s = vaddvq_u32(acc);
    for (; t < k; t++) s += x[t];
    return s;
}

void ref_uint8(const uint8_t *x, const uint64_t *w, int m, int n, int k, int nw, int32_t *out)
{
    int chunks = (k + 15) / 16;
    uint8_t *pad = NULL;  /* a row that does not end on a chunk of 16 is copied, zero-padded (tests only) */
    if (k % 16) pad = calloc((size_t)chunks, 16);
    for (int i = 0; i < m; i++, x += k, out += n) {
        const uint8_t *xs = x;
        if (pad) { memcpy(pad, x, (size_t)k); xs = pad; }
        int32_t total = (int32_t)u8_rowsum(x, k);
        int j = 0;
        uint32_t S[4];
        for (; j + 4 <= n; j += 4) {
            u8_masked4(xs, chunks, w + (size_t)j * nw, nw, 4, S);
            for (int r = 0; r < 4; r++) out[j + r] = total - 2 * (int32_t)S[r];
        }
        for (; j < n; j++) {
            u8_masked4(xs, chunks, w + (size_t)j * nw, nw, 1, S);
            out[j] = total - 2 * (int32_t)S[0];
        }
    }
    free(pad);
}

/* ---------------------------------------------------------------- float32 */

/* sum_t x[t] * (bit t ? -1 : +1) for 4 rows of W (nr = 1: one row, counted 4 times) */
static inline void f32_dot4(const float *x, int k, const uint64_t *w0, int nw, int nr, float s[4])
{
    static const int32_t sh_b[4] = {31, 30, 29, 28};
    const uint32x4_t signbit = vdupq_n_u32(0x80000000u);
    const int32x4_t four = vdupq_n_s32(4);
    const uint32_t *b0 = (const uint32_t *)w0, *b1 = (const uint32_t *)(w0 + (nr > 1 ? nw : 0));
    const uint32_t *b2 = (const uint32_t *)(w0 + (nr > 1 ? 2 * nw : 0)), *b3 = (const uint32_t *)(w0 + (nr > 1 ? 3 * nw : 0));
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    int k4 = k / 4, g = 0;
    for (int h = 0; g < k4; h++) {  /* 32 bits of each row: 8 groups of 4 elements */
        uint32x4_t u0 = vdupq_n_u32(b0[h]), u1 = vdupq_n_u32(b1[h]), u2 = vdupq_n_u32(b2[h]), u3 = vdupq_n_u32(b3[h]);
        int32x4_t sh = vld1q_s32(sh_b);
        int stop = k4 - g > 8 ? g + 8 : k4;
        for (; g < stop; g++, sh = vsubq_s32(sh, four)) {
            uint32x4_t xv = vreinterpretq_u32_f32(vld1q_f32(x + 4 * g));
            a0 = vaddq_f32(a0, vreinterpretq_f32_u32(veorq_u32(xv, vandq_u32(vshlq_u32(u0, sh), signbit))));
            a1 = vaddq_f32(a1, vreinterpretq_f32_u32(veorq_u32(xv, vandq_u32(vshlq_u32(u1, sh), signbit))));
            a2 = vaddq_f32(a2, vreinterpretq_f32_u32(veorq_u32(xv, vandq_u32(vshlq_u32(u2, sh), signbit))));
            a3 = vaddq_f32(a3, vreinterpretq_f32_u32(veorq_u32(xv, vandq_u32(vshlq_u32(u3, sh), signbit))));
        }
    }
    s[0] = vaddvq_f32(a0); s[1] = vaddvq_f32(a1); s[2] = vaddvq_f32(a2); s[3] = vaddvq_f32(a3);
    for (int t = 4 * k4; t < k; t++) {  /* a tail of 1-3 elements */
        const uint64_t *rows[4] = {w0, w0 + (nr > 1 ? nw : 0), w0 + (nr > 1 ? 2 * nw : 0), w0 + (nr > 1 ? 3 * nw : 0)};
        for (int r = 0; r < 4; r++) s[r] += (rows[r][t / 64] >> (t % 64)) & 1 ? -x[t] : x[t];
    }
}

void ref_float32(const float *x, const uint64_t *w, int m, int n, int k, int nw, float *out)
{
    for (int i = 0; i < m; i++, x += k, out += n) {
        int j = 0;
        float s[4];
        for (; j + 4 <= n; j += 4) {
            f32_dot4(x, k, w + (size_t)j * nw, nw, 4, s);
            for (int r = 0; r < 4; r++) out[j + r] = s[r];
        }
        for (; j < n; j++) {
            f32_dot4(x, k, w + (size_t)j * nw, nw, 1, s);
            out[j] = s[0];
        }
    }
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
