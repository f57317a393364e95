/* Continuous rewriter: checks that a checkpoint is one instant of its memory.
 * usage: rewriter MIB THREADS MODE   (MODE: plain | fork | advise)
 * Fills MIB mebibytes with pseudo-random (incompressible) data, then every thread rewrites
 * its share of the pages at full speed, forever, in sweeps: at its step s it takes page
 * p = s mod n of its share, checks that both halves of the page carry stamp s - n (what
 * its previous sweep wrote there), then stamps the first half with s and the second half
 * with s. A memory image that is exactly one instant of the program matches the threads'
 * registers and stacks at that instant, so a restarted program finds every page as its
 * previous sweep left it. A page copied earlier or later than the rest (a stamp too old or
 * too new) or torn (halves differ) is found within one sweep after the restart: the
 * program prints "INCONSISTENT ..." and exits 3.
 * Prints "ready" when every thread has completed one checked sweep. SIGUSR2: every thread
 * does two more sweeps (all checked), then the program prints "consistent" and exits 0.
 * MODE fork: after the fill, the program forks; the child rewrites the first half of the
 * pages, the parent the second half (the rest stays shared copy-on-write), the parent
 * reaps the child at the end and fails if it failed. MODE advise: the first third of the
 * memory is MADV_DONTFORK, the second third MADV_WIPEONFORK. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define HALF (PAGE / 2)

static unsigned char *mem;
static atomic_int stop;
static atomic_int swept;

struct share {
    size_t first, n; /* pages [first, first + n) */
};

static void on_usr2(int sig) { (void)sig; atomic_store(&stop, 1); }

static void *writer(void *arg) {
    struct share *sh = arg;
    size_t n = sh->n;
    uint64_t s = n; /* the fill was sweep 0: page i holds stamp i */
    int ready = 0;
    uint64_t until = UINT64_MAX;
    for (;;) {
        size_t i = s % n;
        unsigned char *page = mem + (sh->first + i) * PAGE;
        volatile uint64_t *a = (volatile uint64_t *)page;
        volatile uint64_t *b = (volatile uint64_t *)(page + HALF);
        uint64_t want = s - n, ga = *a, gb = *b;
        if (ga != want || gb != want) {
            printf("INCONSISTENT page %zu: halves %llu %llu, expected %llu (step %llu)\n",
                   sh->first + i, (unsigned long long)ga, (unsigned long long)gb,
                   (unsigned long long)want, (unsigned long long)s);
            fflush(stdout);
            _exit(3);
        }
        *a = s;
        *b = s;
        s++;
        if (s % n == 0) {
            if (!ready) {
                ready = 1;
                atomic_fetch_add(&swept, 1);
            }
            if (until == UINT64_MAX && atomic_load(&stop))
                until = s + 2 * n;
            if (s >= until)
                return NULL;
        }
    }
}

static int run(size_t first, size_t pages, int threads, int announce) {
    pthread_t t[64];
    struct share sh[64];
    for (int k = 0; k < threads; k++) {
        sh[k].first = first + pages * k / threads;
        sh[k].n = pages * (k + 1) / threads - pages * k / threads;
        pthread_create(&t[k], NULL, writer, &sh[k]);
    }
    while (announce && atomic_load(&swept) < threads)
        usleep(1000);
    if (announce) {
        printf("ready\n");
        fflush(stdout);
    }
    for (int k = 0; k < threads; k++)
        pthread_join(t[k], NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: rewriter MIB THREADS plain|fork|advise\n");
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) << 20, pages = bytes / PAGE;
    int threads = atoi(argv[2]);
    const char *mode = argv[3];
    if (threads < 1 || threads > 64 || pages < (size_t)threads * 16)
        return 2;
    signal(SIGUSR2, on_usr2);
    mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return 4;
    if (!strcmp(mode, "advise")) {
        size_t third = pages / 3 * PAGE;
        if (madvise(mem, third, MADV_DONTFORK) || madvise(mem + third, third, MADV_WIPEONFORK))
            return 5;
    }
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t w = 0; w < bytes / 8; w++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((uint64_t *)mem)[w] = x;
    }
    /* Sweep 0 of every share: page i of a share holds stamp i. */
    for (int k = 0; k < threads; k++) {
        size_t first = pages * k / threads, n = pages * (k + 1) / threads - first;
        if (!strcmp(mode, "fork"))
            break;
        for (size_t i = 0; i < n; i++) {
            *(uint64_t *)(mem + (first + i) * PAGE) = i;
            *(uint64_t *)(mem + (first + i) * PAGE + HALF) = i;
        }
    }
    if (strcmp(mode, "fork")) {
        run(0, pages, threads, 1);
        printf("consistent\n");
        return 0;
    }
    /* fork: child rewrites [0, pages/2), parent [pages/2, pages), each with `threads`. */
    size_t half = pages / 2;
    for (int side = 0; side < 2; side++) {
        size_t first = side ? half : 0, count = side ? pages - half : half;
        for (int k = 0; k < threads; k++) {
            size_t f = first + count * k / threads, n = count * (k + 1) / threads - count * k / threads;
            for (size_t i = 0; i < n; i++) {
                *(uint64_t *)(mem + (f + i) * PAGE) = i;
                *(uint64_t *)(mem + (f + i) * PAGE + HALF) = i;
            }
        }
    }
    pid_t child = fork();
    if (child < 0)
        return 6;
    if (child == 0)
        return run(0, half, threads, 0);
    run(half, pages - half, threads, 1);
    /* The child got SIGUSR2 too (the whole group is signalled) or gets it now. */
    kill(child, SIGUSR2);
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("child failed: %#x\n", st);
        return 7;
    }
    printf("consistent\n");
    return 0;
}
