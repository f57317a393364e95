/* Differential test program: fills MIB mebibytes with pseudo-random data, then repeatedly
 * rewrites a slice and checksums the whole area. usage: bigmem MIB ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    long rounds = argc > 2 ? atol(argv[2]) : 20;
    size_t words = mib * 1024 * 1024 / 8;
    uint64_t *mem = malloc(words * 8);
    if (!mem) { perror("malloc"); return 1; }
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (size_t i = 0; i < words; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; mem[i] = x; }
    printf("filled %zu MiB\n", mib);
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        size_t start = (size_t)(x % words), n = words / 64;
        for (size_t k = 0; k < n; k++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; mem[(start + k) % words] ^= x; }
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < words; i++) h = (h ^ mem[i]) * 1099511628211ULL;
        printf("round %ld checksum %016llx\n", r, (unsigned long long)h);
        fflush(stdout);
        usleep(100000);
    }
    printf("done\n");
    return 0;
}
