/* neon_check.c - runs one product of neon_ref.c on operands read from stdin and writes the
 * result to stdout, for tests/test_arm_insn_harness.py (which compares it with fastbin.reference).
 *
 * stdin:  int32 product (0 binary, 1 uint8, 2 float32), m, n, k; then the left operand (binary:
 *         uint64 (m, nw); uint8: (m, k) bytes; float32: (m, k)), then W's packed uint64 (n, nw)
 * stdout: int32 (m, n) (binary, uint8) or float32 (m, n)
 * Build:  aarch64-linux-gnu-gcc -O3 -mcpu=CPU -static -o neon_check neon_check.c neon_ref.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void ref_binary(const uint64_t *a, const uint64_t *w, int m, int n, int nw, int k, int32_t *out);
void ref_uint8(const uint8_t *x, const uint64_t *w, int m, int n, int k, int nw, int32_t *out);
void ref_float32(const float *x, const uint64_t *w, int m, int n, int k, int nw, float *out);

static void *read_all(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, stdin) != bytes) { fprintf(stderr, "neon_check: short input\n"); exit(2); }
    return p;
}

int main(void)
{
    int32_t *head = read_all(4 * sizeof(int32_t));
    int product = head[0], m = head[1], n = head[2], k = head[3], nw = (k + 63) / 64;
    size_t left = product == 0 ? (size_t)m * nw * 8 : product == 1 ? (size_t)m * k : (size_t)m * k * 4;
    void *x = read_all(left);
    uint64_t *w = read_all((size_t)n * nw * 8);
    void *out = malloc((size_t)m * n * 4);
    if (product == 0) ref_binary(x, w, m, n, nw, k, out);
    else if (product == 1) ref_uint8(x, w, m, n, k, nw, out);
    else ref_float32(x, w, m, n, k, nw, out);
    fwrite(out, 4, (size_t)m * n, stdout);
    return 0;
}
