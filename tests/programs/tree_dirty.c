/* Incremental checkpoints of a process tree (tests/incremental.rs).
 * usage: tree_dirty MIB ROUNDS
 * The parent forks one child and waits for it. The child fills MIB mebibytes with
 * pseudo-random data, prints "ready", then runs ROUNDS rounds 30 ms apart; each rewrites
 * 1 % of the buffer in random 64 KiB blocks and prints the round's checksum of the whole
 * buffer. Deterministic: the output of a run does not depend on when it was checkpointed, so
 * a restart from any generation must print what the native run printed. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
static uint64_t x = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: tree_dirty MIB ROUNDS\n"); return 2; }
    size_t len = (size_t)atol(argv[1]) * 1024 * 1024;
    int rounds = atoi(argv[2]);
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t c = fork();
    if (c < 0) { perror("fork"); return 2; }
    if (c > 0) {
        int st;
        if (waitpid(c, &st, 0) != c) { perror("waitpid"); return 2; }
        printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        return 0;
    }
    uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 2; }
    size_t words = len / 8, blocks = len / BLOCK;
    for (size_t i = 0; i < words; i++) p[i] = next();
    printf("ready\n");
    for (int r = 0; r < rounds; r++) {
        size_t n = blocks / 100 ? blocks / 100 : 1;
        for (size_t b = 0; b < n; b++) {
            uint64_t *q = p + (next() % blocks) * (BLOCK / 8);
            for (size_t i = 0; i < BLOCK / 8; i++) q[i] = next();
        }
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < words; i++) h = (h ^ p[i]) * 1099511628211ULL;
        printf("round %d %016llx\n", r, (unsigned long long)h);
        usleep(30000);
    }
    return 0;
}
