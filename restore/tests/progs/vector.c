/* Keeps known values live in xmm/ymm registers across many nanosleep syscalls (during which
 * the checkpoint happens), then checks them. Prints "ok N" or "bad". */
#include <stdio.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    static unsigned char pat[64] __attribute__((aligned(32)));
    static unsigned char got[64] __attribute__((aligned(32)));
    for (int i = 0; i < 64; i++) pat[i] = (unsigned char)(i * 7 + 3);
    struct timespec ts = {0, 2000000};
    long n = 150;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    __asm__ volatile(
        "vmovdqu (%[p]), %%ymm8\n\t"
        "vmovdqu 32(%[p]), %%ymm9\n\t"
        "movdqu 16(%[p]), %%xmm7\n\t"
        "1:\n\t"
        "mov $35, %%eax\n\t"
        "mov %[ts], %%rdi\n\t"
        "xor %%esi, %%esi\n\t"
        "syscall\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm8, (%[g])\n\t"
        "vmovdqu %%ymm9, 32(%[g])\n\t"
        "movdqu %%xmm7, %%xmm0\n\t"
        : [n] "+r"(n)
        : [p] "r"(pat), [g] "r"(got), [ts] "r"(&ts)
        : "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "xmm7", "xmm8", "xmm9", "memory");
    int ok = memcmp(pat, got, 64) == 0;
    fprintf(f, ok ? "ok\n" : "bad\n");
    fclose(f);
    return ok ? 0 : 1;
}
