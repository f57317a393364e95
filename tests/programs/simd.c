/* Differential test program: keeps values live in registers across long busy loops (where a
 * checkpoint will land) and checks them afterwards: ymm8-15 (AVX2), zmm16-31 and the mask
 * registers k1-k7 (AVX-512, where the CPU has it), and all eight x87 stack registers.
 * Prints which of them the CPU has first. usage: simd ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads ymm8..ymm15 from `in`, spins `spins` iterations touching only general registers,
 * stores ymm8..ymm15 to `out`. */
static void hold_in_ymm(const uint64_t *in, uint64_t *out, uint64_t spins) {
    __asm__ volatile(
        "vmovdqu 0(%0), %%ymm8\n\t"
        "vmovdqu 32(%0), %%ymm9\n\t"
        "vmovdqu 64(%0), %%ymm10\n\t"
        "vmovdqu 96(%0), %%ymm11\n\t"
        "vmovdqu 128(%0), %%ymm12\n\t"
        "vmovdqu 160(%0), %%ymm13\n\t"
        "vmovdqu 192(%0), %%ymm14\n\t"
        "vmovdqu 224(%0), %%ymm15\n\t"
        "1:\n\t"
        "dec %2\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm8, 0(%1)\n\t"
        "vmovdqu %%ymm9, 32(%1)\n\t"
        "vmovdqu %%ymm10, 64(%1)\n\t"
        "vmovdqu %%ymm11, 96(%1)\n\t"
        "vmovdqu %%ymm12, 128(%1)\n\t"
        "vmovdqu %%ymm13, 160(%1)\n\t"
        "vmovdqu %%ymm14, 192(%1)\n\t"
        "vmovdqu %%ymm15, 224(%1)\n\t"
        "vzeroupper\n\t"
        : "+r"(in), "+r"(out), "+r"(spins)
        :
        : "memory", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* Loads zmm16..zmm31 from `in` (128 words) and k1..k7 from `kin`, spins, stores them back. */
__attribute__((target("avx512f"))) static void hold_in_zmm(const uint64_t *in, uint64_t *out,
                                                           const uint16_t *kin, uint16_t *kout,
                                                           uint64_t spins) {
    __asm__ volatile(
        "vmovdqu64 0(%0), %%zmm16\n\t"
        "vmovdqu64 64(%0), %%zmm17\n\t"
        "vmovdqu64 128(%0), %%zmm18\n\t"
        "vmovdqu64 192(%0), %%zmm19\n\t"
        "vmovdqu64 256(%0), %%zmm20\n\t"
        "vmovdqu64 320(%0), %%zmm21\n\t"
        "vmovdqu64 384(%0), %%zmm22\n\t"
        "vmovdqu64 448(%0), %%zmm23\n\t"
        "vmovdqu64 512(%0), %%zmm24\n\t"
        "vmovdqu64 576(%0), %%zmm25\n\t"
        "vmovdqu64 640(%0), %%zmm26\n\t"
        "vmovdqu64 704(%0), %%zmm27\n\t"
        "vmovdqu64 768(%0), %%zmm28\n\t"
        "vmovdqu64 832(%0), %%zmm29\n\t"
        "vmovdqu64 896(%0), %%zmm30\n\t"
        "vmovdqu64 960(%0), %%zmm31\n\t"
        "kmovw 0(%2), %%k1\n\t"
        "kmovw 2(%2), %%k2\n\t"
        "kmovw 4(%2), %%k3\n\t"
        "kmovw 6(%2), %%k4\n\t"
        "kmovw 8(%2), %%k5\n\t"
        "kmovw 10(%2), %%k6\n\t"
        "kmovw 12(%2), %%k7\n\t"
        "1:\n\t"
        "dec %4\n\t"
        "jnz 1b\n\t"
        "vmovdqu64 %%zmm16, 0(%1)\n\t"
        "vmovdqu64 %%zmm17, 64(%1)\n\t"
        "vmovdqu64 %%zmm18, 128(%1)\n\t"
        "vmovdqu64 %%zmm19, 192(%1)\n\t"
        "vmovdqu64 %%zmm20, 256(%1)\n\t"
        "vmovdqu64 %%zmm21, 320(%1)\n\t"
        "vmovdqu64 %%zmm22, 384(%1)\n\t"
        "vmovdqu64 %%zmm23, 448(%1)\n\t"
        "vmovdqu64 %%zmm24, 512(%1)\n\t"
        "vmovdqu64 %%zmm25, 576(%1)\n\t"
        "vmovdqu64 %%zmm26, 640(%1)\n\t"
        "vmovdqu64 %%zmm27, 704(%1)\n\t"
        "vmovdqu64 %%zmm28, 768(%1)\n\t"
        "vmovdqu64 %%zmm29, 832(%1)\n\t"
        "vmovdqu64 %%zmm30, 896(%1)\n\t"
        "vmovdqu64 %%zmm31, 960(%1)\n\t"
        "kmovw %%k1, 0(%3)\n\t"
        "kmovw %%k2, 2(%3)\n\t"
        "kmovw %%k3, 4(%3)\n\t"
        "kmovw %%k4, 6(%3)\n\t"
        "kmovw %%k5, 8(%3)\n\t"
        "kmovw %%k6, 10(%3)\n\t"
        "kmovw %%k7, 12(%3)\n\t"
        "vzeroupper\n\t"
        : "+r"(in), "+r"(out), "+r"(kin), "+r"(kout), "+r"(spins)
        :
        : "memory", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
          "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2",
          "k3", "k4", "k5", "k6", "k7");
}

/* Pushes in[0..8] on the x87 stack (all eight registers), spins, pops them into out[7..0]. */
static void hold_in_x87(const long double *in, long double *out, uint64_t spins) {
    __asm__ volatile(
        "fldt 0(%0)\n\t"
        "fldt 16(%0)\n\t"
        "fldt 32(%0)\n\t"
        "fldt 48(%0)\n\t"
        "fldt 64(%0)\n\t"
        "fldt 80(%0)\n\t"
        "fldt 96(%0)\n\t"
        "fldt 112(%0)\n\t"
        "1:\n\t"
        "dec %2\n\t"
        "jnz 1b\n\t"
        "fstpt 112(%1)\n\t"
        "fstpt 96(%1)\n\t"
        "fstpt 80(%1)\n\t"
        "fstpt 64(%1)\n\t"
        "fstpt 48(%1)\n\t"
        "fstpt 32(%1)\n\t"
        "fstpt 16(%1)\n\t"
        "fstpt 0(%1)\n\t"
        : "+r"(in), "+r"(out), "+r"(spins)
        :
        : "memory", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
}

static uint64_t next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 200;
    int avx2 = __builtin_cpu_supports("avx2"), avx512 = __builtin_cpu_supports("avx512f");
    printf("avx2: %s, avx512f: %s\n", avx2 ? "yes" : "no", avx512 ? "yes" : "no");
    uint64_t in[32], out[32], zin[128], zout[128];
    uint16_t kin[7], kout[7];
    long double xin[8], xout[8];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    long bad = 0;
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 32; i++) in[i] = next(&x);
        for (int i = 0; i < 128; i++) zin[i] = next(&x);
        for (int i = 0; i < 7; i++) kin[i] = (uint16_t)next(&x);
        for (int i = 0; i < 8; i++) xin[i] = (long double)next(&x) / 3.0L;
        memset(out, 0, sizeof out);
        memset(zout, 0, sizeof zout);
        memset(kout, 0, sizeof kout);
        memset(xout, 0, sizeof xout);
        int ok = 1;
        if (avx2) {
            hold_in_ymm(in, out, 5000000ULL);
            ok &= memcmp(in, out, sizeof in) == 0;
        }
        if (avx512) {
            hold_in_zmm(zin, zout, kin, kout, 5000000ULL);
            ok &= memcmp(zin, zout, sizeof zin) == 0 && memcmp(kin, kout, sizeof kin) == 0;
        }
        hold_in_x87(xin, xout, 5000000ULL);
        for (int i = 0; i < 8; i++) ok &= memcmp(&xin[i], &xout[i], 10) == 0;
        if (!ok) bad++;
        printf("round %ld %s %016llx\n", r, ok ? "ok" : "CORRUPT", (unsigned long long)x);
        fflush(stdout);
    }
    printf("done bad=%ld\n", bad);
    return bad != 0;
}
