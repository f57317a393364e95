/* Pre-copy stress test program (tests/incremental.rs).
 * usage: precopy_stress MIB
 * Thread "writer" rewrites random 8-byte words of a MIB-mebibyte buffer without pause; thread
 * "mapper" keeps a table of 8 side mappings, replacing one after another without pause (mmap a
 * new one of varying size, fill it, record it in the table, munmap the old one; every 3rd one
 * is grown with mremap, which may move it). Both keep their progress in memory. Prints
 * "ready" once the buffer is filled. On SIGUSR2 both stop; the program then checks that the
 * buffer is exactly what replaying the writer's recorded number of writes from the start
 * gives, and that every recorded side mapping holds the pattern of its generation; prints
 * "verified writes=N maps=M" and exits 0, or prints what differs and exits 1.
 * A checkpoint taken while both run must restore memory as it was at one instant: a page
 * copied early and written before the freeze, or a mapping replaced meanwhile, shows up as a
 * difference after restart. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SLOTS 8
#define PAGE 4096
static volatile sig_atomic_t stop;
static uint64_t *buf;
static size_t words;
static uint64_t writes;          /* completed writes of the writer */
static struct { uint64_t *p; size_t len; uint64_t gen; } slot[SLOTS];
static uint64_t maps;            /* side mappings made */

static uint64_t step(uint64_t *s) { uint64_t x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }
static void initial(uint64_t *b) { uint64_t s = 0x1234567; for (size_t i = 0; i < words; i++) b[i] = step(&s); }
static void write_one(uint64_t *b, uint64_t *s, uint64_t n) { uint64_t x = step(s); b[x % words] = x ^ n; }
static uint64_t pat(uint64_t gen, size_t i) { return gen * 0x9E3779B97F4A7C15ULL + i; }
static size_t len_of(uint64_t gen) { return (1 + gen % 13) * 16 * PAGE; }

static void *writer(void *arg) {
    (void)arg;
    uint64_t s = 0xC0FFEE;
    uint64_t n = 0;
    while (!stop) {
        write_one(buf, &s, n);
        n++;
        writes = n;
    }
    return NULL;
}

static void fill_map(uint64_t *p, size_t len, uint64_t gen) { for (size_t i = 0; i < len / 8; i++) p[i] = pat(gen, i); }

static void *mapper(void *arg) {
    (void)arg;
    while (!stop) {
        uint64_t g = maps + 1;
        size_t len = len_of(g);
        uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); exit(2); }
        if (g % 3 == 0) {
            size_t big = len + 32 * PAGE;
            uint64_t *q = mremap(p, len, big, MREMAP_MAYMOVE);
            if (q == MAP_FAILED) { perror("mremap"); exit(2); }
            p = q; len = big;
        }
        fill_map(p, len, g);
        int k = g % SLOTS;
        uint64_t *old = slot[k].p; size_t oldlen = slot[k].len;
        slot[k].p = p; slot[k].len = len; slot[k].gen = g;
        maps = g;
        if (old) munmap(old, oldlen);
    }
    return NULL;
}

static void on_usr2(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: precopy_stress MIB\n"); return 2; }
    words = (size_t)atol(argv[1]) * 1024 * 1024 / 8;
    buf = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) { perror("mmap"); return 2; }
    initial(buf);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t a, b;
    pthread_create(&a, NULL, writer, NULL);
    pthread_create(&b, NULL, mapper, NULL);
    printf("ready\n");
    while (!stop) pause();
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    uint64_t *want = malloc(words * 8);
    if (!want) return 2;
    initial(want);
    uint64_t s = 0xC0FFEE;
    for (uint64_t n = 0; n < writes; n++) write_one(want, &s, n);
    int bad = 0;
    for (size_t i = 0; i < words; i++) {
        if (want[i] != buf[i]) {
            if (bad++ < 5) printf("word %zu (page %zu): %016llx, expected %016llx\n", i, i * 8 / PAGE,
                                  (unsigned long long)buf[i], (unsigned long long)want[i]);
        }
    }
    for (int k = 0; k < SLOTS; k++) {
        if (!slot[k].p) continue;
        for (size_t i = 0; i < slot[k].len / 8; i++) {
            if (slot[k].p[i] != pat(slot[k].gen, i)) {
                if (bad++ < 10) printf("mapping %d (generation %llu) word %zu differs\n", k,
                                       (unsigned long long)slot[k].gen, i);
                break;
            }
        }
    }
    if (bad) { printf("MISMATCH: %d differences after %llu writes\n", bad, (unsigned long long)writes); return 1; }
    printf("verified writes=%llu maps=%llu\n", (unsigned long long)writes, (unsigned long long)maps);
    return 0;
}
