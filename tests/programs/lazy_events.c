/* Lazy-restore test program: right after it resumes, it changes its address space in every
 * way a lazy restore must follow while pages are still missing, then checks its memory.
 * usage: lazy_events MIB signal|now
 * Fills MIB mebibytes (at least 128) with pseudo-random data and prints "ready"; with
 * "signal" it then waits for SIGUSR2 (the checkpoint is taken while it waits), with "now" it
 * goes on at once. Then, with no pause between the steps, in the last 64 MiB of the buffer
 * (which a lazy restore fills last):
 *  1. MADV_DONTNEED on 4 MiB (must read back as zeros);
 *  2. mremap of 8 MiB to a new address (the data moves with it);
 *  3. munmap of 4 MiB;
 *  4. mprotect PROT_READ of 1 MiB (splits the mapping);
 *  5. read(2) from a pipe into the buffer (the kernel writes to a page, not the program);
 *  6. fork: the child prints the checksums of every part that is left and exits; the parent
 *     waits for it, then prints the same checksums itself. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024UL)

static uint64_t sum(const unsigned char *p, size_t len) {
    const uint64_t *w = (const uint64_t *)p;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len / 8; i++) h = (h ^ w[i]) * 1099511628211ULL;
    return h;
}

/* Checksums of every part of the buffer left after the steps. */
static void report(const char *who, unsigned char *a, size_t len, unsigned char *moved) {
    unsigned char *e = a + len - 64 * MIB;
    printf("%s: start %016llx\n", who, (unsigned long long)sum(a, len - 64 * MIB));
    printf("%s: dropped (zeros) %016llx\n", who, (unsigned long long)sum(e, 4 * MIB));
    printf("%s: kept %016llx\n", who, (unsigned long long)sum(e + 4 * MIB, 4 * MIB));
    printf("%s: moved %016llx\n", who, (unsigned long long)sum(moved, 8 * MIB));
    printf("%s: between %016llx\n", who, (unsigned long long)sum(e + 16 * MIB, 4 * MIB));
    printf("%s: rest %016llx\n", who, (unsigned long long)sum(e + 24 * MIB, 40 * MIB));
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: lazy_events MIB signal|now\n"); return 2; }
    size_t mib = (size_t)atol(argv[1]);
    if (mib < 128) mib = 128;
    size_t len = mib * MIB;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    unsigned char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) { perror("mmap"); return 1; }
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < len / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ((uint64_t *)a)[i] = x;
    }
    /* A place for the move, reserved now so that its address is the same in every run. */
    unsigned char *dst = mmap(NULL, 8 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) { perror("mmap"); return 1; }
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    printf("ready\n");
    fflush(stdout);
    if (strcmp(argv[2], "signal") == 0) { int sig; sigwait(&set, &sig); }

    unsigned char *e = a + len - 64 * MIB;
    if (madvise(e, 4 * MIB, MADV_DONTNEED) != 0) { perror("madvise"); return 1; }
    unsigned char *moved = mremap(e + 8 * MIB, 8 * MIB, 8 * MIB, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (moved == MAP_FAILED) { perror("mremap"); return 1; }
    if (munmap(e + 20 * MIB, 4 * MIB) != 0) { perror("munmap"); return 1; }
    if (mprotect(e + 30 * MIB, 1 * MIB, PROT_READ) != 0) { perror("mprotect"); return 1; }
    char msg[64];
    memset(msg, 'k', sizeof msg);
    if (write(fds[1], msg, sizeof msg) != (ssize_t)sizeof msg) { perror("write"); return 1; }
    if (read(fds[0], e + 40 * MIB + 4000, sizeof msg) != (ssize_t)sizeof msg) { perror("read"); return 1; }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        report("child", a, len, moved);
        _exit(0);
    }
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child failed\n");
        return 1;
    }
    report("parent", a, len, moved);
    printf("done\n");
    return 0;
}
