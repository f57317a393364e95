/* Incremental-checkpoint test and benchmark program.
 * usage: dirtymem MIB PERMILLE ROUNDS MODE [random|zeros|pyheap]
 * Fills MIB mebibytes with pseudo-random (incompressible) data, prints "ready", then runs
 * ROUNDS rounds. Each round rewrites PERMILLE/1000 of the buffer in random 64 KiB blocks,
 * drops one block with MADV_DONTNEED (it reads back as zeros), and cycles a side mapping
 * through mmap / mremap (grow, may move) / munmap; then prints the round's checksum of all
 * its memory. MODE "signal": each round waits for SIGUSR2; MODE "timed": 40 ms apart.
 * The data kind (default random = incompressible): zeros = 9 of 10 pages zero (but resident),
 * pyheap = 64-byte object-like records (refcounts, type and object pointers, small ints). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
static uint64_t x = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
static int kind; /* 0 random, 1 zeros, 2 pyheap */
static void fill(uint64_t *p, size_t words) {
    for (size_t i = 0; i < words; i++) {
        if (kind == 0) {
            p[i] = next();
        } else if (kind == 1) {
            p[i] = ((((uintptr_t)(p + i)) >> 12) % 10 == 0) ? next() : 0;
        } else {
            switch (i % 8) {
            case 0: p[i] = 1 + next() % 4; break;
            case 1: p[i] = 0x55d0c0a01200ULL + (next() % 6) * 0x40; break;
            case 2: case 3: p[i] = 0x7f3a40000000ULL + ((uintptr_t)(p + i) & 0xffffff) + (next() & 0x7c0); break;
            case 4: p[i] = next() % 1000; break;
            default: p[i] = 0x2020657571696e75ULL ^ (next() % 16);
            }
        }
    }
}
static uint64_t sum(const uint64_t *p, size_t words, uint64_t h) {
    for (size_t i = 0; i < words; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: dirtymem MIB PERMILLE ROUNDS signal|timed\n"); return 2; }
    size_t len = (size_t)atol(argv[1]) * 1024 * 1024;
    long permille = atol(argv[2]), rounds = atol(argv[3]);
    int by_signal = strcmp(argv[4], "signal") == 0;
    if (argc > 5) kind = strcmp(argv[5], "zeros") == 0 ? 1 : strcmp(argv[5], "pyheap") == 0 ? 2 : 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    fill(mem, len / 8);
    size_t blocks = len / BLOCK, per_round = blocks * permille / 1000;
    if (per_round == 0) per_round = 1;
    uint64_t *side = NULL;
    size_t side_len = 0;
    printf("ready\n");
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        if (by_signal) { int sig; sigwait(&set, &sig); } else usleep(40000);
        for (size_t k = 0; k < per_round; k++)
            fill(mem + (next() % blocks) * (BLOCK / 8), BLOCK / 8);
        madvise((char *)mem + (next() % blocks) * BLOCK, BLOCK, MADV_DONTNEED);
        switch (r % 3) {
        case 0:
            side_len = 4 * BLOCK;
            side = mmap(NULL, side_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (side == MAP_FAILED) { perror("mmap"); return 1; }
            fill(side, side_len / 8);
            break;
        case 1:
            side = mremap(side, side_len, 64 * BLOCK, MREMAP_MAYMOVE);
            if (side == MAP_FAILED) { perror("mremap"); return 1; }
            fill(side + side_len / 8, (64 * BLOCK - side_len) / 8);
            side_len = 64 * BLOCK;
            break;
        default:
            munmap(side, side_len);
            side = NULL;
            side_len = 0;
        }
        uint64_t h = sum(mem, len / 8, 14695981039346656037ULL);
        if (side) h = sum(side, side_len / 8, h);
        printf("round %ld checksum %016llx\n", r, (unsigned long long)h);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
