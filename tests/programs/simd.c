/* Differential test program: keeps values live in ymm registers across long busy loops (where
 * a checkpoint will land) and checks them afterwards. usage: simd ROUNDS */
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

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 200;
    if (!__builtin_cpu_supports("avx2")) { printf("no avx\n"); return 0; }
    uint64_t in[32], out[32];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    long bad = 0;
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 32; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; in[i] = x; }
        memset(out, 0, sizeof out);
        hold_in_ymm(in, out, 20000000ULL);
        int ok = memcmp(in, out, sizeof in) == 0;
        if (!ok) bad++;
        printf("round %ld %s %016llx\n", r, ok ? "ok" : "CORRUPT", (unsigned long long)x);
        fflush(stdout);
    }
    printf("done bad=%ld\n", bad);
    return bad != 0;
}
