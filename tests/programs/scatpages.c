/* Page-granular delta test and benchmark program.
 * usage: scatpages MIB PAGES ROUNDS signal|timed
 * Fills MIB mebibytes with pseudo-random (incompressible) data, prints "ready", then runs
 * ROUNDS rounds. Each round gives PAGES scattered 4 KiB pages new random content: the buffer
 * is cut into PAGES equal stretches and one page at a random place in each is rewritten
 * whole, so no two changed pages share an aligned 32 KiB block when the stretches are larger
 * than that. Then it prints the round's checksum of the whole buffer. MODE "signal": each
 * round waits for SIGUSR2; MODE "timed": 40 ms apart. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
static uint64_t x = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: scatpages MIB PAGES ROUNDS signal|timed\n"); return 2; }
    size_t len = (size_t)atol(argv[1]) * 1024 * 1024;
    size_t pages = (size_t)atol(argv[2]);
    long rounds = atol(argv[3]);
    int by_signal = strcmp(argv[4], "signal") == 0;
    size_t total = len / PAGE;
    if (pages == 0 || pages > total) { fprintf(stderr, "PAGES must be 1..%zu\n", total); return 2; }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < len / 8; i++) mem[i] = next();
    size_t stretch = total / pages;
    printf("ready\n");
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        if (by_signal) { int sig; sigwait(&set, &sig); } else usleep(40000);
        for (size_t k = 0; k < pages; k++) {
            uint64_t *p = mem + (k * stretch + next() % stretch) * (PAGE / 8);
            for (size_t w = 0; w < PAGE / 8; w++) p[w] = next();
        }
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < len / 8; i++) h = (h ^ mem[i]) * 1099511628211ULL;
        printf("round %ld checksum %016llx\n", r, (unsigned long long)h);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
