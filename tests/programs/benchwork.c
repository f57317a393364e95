/* Workloads of the side-by-side checkpoint benchmark (scripts/bench-compare.sh).
 * usage: benchwork MIB MODE DIR [ARG]
 * Fills MIB mebibytes with pseudo-random (incompressible) data, appends "ready" to DIR/out,
 * then waits for requests: a request is the file DIR/go.N for the next N = 1, 2, ... (the
 * script creates it; no signal and no open descriptor, so every checkpointer sees the same
 * program). Lines go to DIR/out, each appended with its own open/write/close.
 * MODE rewrite (ARG: seconds of work of the first window, default 10): rewrites all its
 * memory continuously at full speed, one random word in every 4 KiB page per sweep (every
 * page is dirty after each sweep, and the memory stays incompressible). Request N starts a work window: window 1 lasts ARG seconds and
 * counts its sweeps W; every later window does exactly W sweeps. At the end of a window:
 * "work N sweeps W seconds S". A checkpoint during a window lengthens it by what the
 * program lost to the checkpoint (frozen time, page faults, CPU taken by the checkpointer).
 * MODE scatter (ARG: per mille of the pages changed per round, default 10): idle (checks for
 * requests every 10 ms); request N gives ARG/1000 of the pages new random content, one page
 * at a random place in each of as many equal stretches (scattered single pages), then
 * "round N changed B checksum H" (checksum of the whole buffer: equal under every tool and
 * across restarts, the generator's state being in memory). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
static uint64_t x = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
static char dir[4096];

static void say(const char *line) {
    char path[4200];
    snprintf(path, sizeof path, "%s/out", dir);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { perror(path); exit(1); }
    size_t len = strlen(line);
    if (write(fd, line, len) != (ssize_t)len) { perror("write"); exit(1); }
    close(fd);
}

static int requested(long n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/go.%ld", dir, n);
    return access(path, F_OK) == 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: benchwork MIB rewrite|scatter DIR [ARG]\n"); return 2; }
    size_t len = (size_t)atol(argv[1]) << 20, pages = len / PAGE;
    int rewrite = strcmp(argv[2], "rewrite") == 0;
    snprintf(dir, sizeof dir, "%s", argv[3]);
    double arg = argc > 4 ? atof(argv[4]) : rewrite ? 10 : 10;
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < len / 8; i++) mem[i] = next();
    say("ready\n");
    char line[256];
    long n = 1;
    if (rewrite) {
        uint64_t sweeps = 0, start = 0, want = 0;
        double t0 = 0;
        int in_window = 0;
        for (;;) {
            volatile uint64_t *p = mem;
            /* New random words, so that the memory stays incompressible. */
            for (size_t i = 0; i < pages; i++) p[i * (PAGE / 8) + (sweeps & 511)] = next();
            sweeps++;
            if (in_window) {
                int done = want ? sweeps - start >= want : now() - t0 >= arg;
                if (done) {
                    if (!want) want = sweeps - start;
                    snprintf(line, sizeof line, "work %ld sweeps %llu seconds %.3f\n", n,
                             (unsigned long long)(sweeps - start), now() - t0);
                    say(line);
                    in_window = 0;
                    n++;
                }
            } else if (requested(n)) {
                in_window = 1;
                start = sweeps;
                t0 = now();
            }
        }
    }
    size_t changed = pages * (size_t)arg / 1000;
    if (changed == 0) changed = 1;
    size_t stretch = pages / changed;
    for (;;) {
        while (!requested(n)) usleep(10000);
        for (size_t k = 0; k < changed; k++) {
            uint64_t *p = mem + (k * stretch + next() % stretch) * (PAGE / 8);
            for (size_t w = 0; w < PAGE / 8; w++) p[w] = next();
        }
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < len / 8; i++) h = (h ^ mem[i]) * 1099511628211ULL;
        snprintf(line, sizeof line, "round %ld changed %zu checksum %016llx\n", n,
                 changed * PAGE, (unsigned long long)h);
        say(line);
        n++;
    }
}
