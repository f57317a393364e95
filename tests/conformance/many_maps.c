/* 20,000 private anonymous mappings of alternating protections, each with its own contents.
 * kind: memory
 * checks: address, length and protection of every mapping (/proc/self/maps), contents of every page
 * root: restored
 */
#include "conformance.h"
#include <sys/mman.h>

#define N 20000
#define PG 4096

static char *base;

static int prot_of(int i) {
    switch (i % 3) {
    case 0: return PROT_READ | PROT_WRITE;
    case 1: return PROT_READ;
    default: return PROT_NONE;
    }
}

static void setup(void) {
    /* One reservation, then every other page mapped on its own with its own protection: the
     * holes keep neighbours from merging, so /proc/self/maps shows N mappings. */
    base = mmap(NULL, (size_t)2 * N * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) CF_TRY(-1);
    CF_TRY(munmap(base, (size_t)2 * N * PG));
    for (int i = 0; i < N; i++) {
        char *p = mmap(base + (size_t)2 * i * PG, PG, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED) CF_TRY(-1);
        snprintf(p, 64, "mapping %d", i);
        CF_TRY(mprotect(p, PG, prot_of(i)));
    }
}

static void check(void) {
    int fails = 0;
    for (int i = 0; i < N && fails < 5; i++) {
        char *p = base + (size_t)2 * i * PG;
        char want[64];
        snprintf(want, sizeof want, "mapping %d", i);
        if (prot_of(i) == PROT_NONE) CF_TRY(mprotect(p, PG, PROT_READ));
        if (strcmp(p, want) != 0) {
            cf_fail("contents of mapping %d: expected \"%s\", got \"%.20s\"", i, want, p);
            fails++;
        }
        if (prot_of(i) == PROT_NONE) CF_TRY(mprotect(p, PG, PROT_NONE));
    }
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) CF_TRY(-1);
    char line[512];
    int seen = 0;
    unsigned long lo = (unsigned long)base, hi = lo + (unsigned long)2 * N * PG;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || a < lo || a >= hi) continue;
        int i = (int)((a - lo) / (2 * PG));
        int pr = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
                 (perms[2] == 'x' ? PROT_EXEC : 0);
        if (a != lo + (unsigned long)2 * i * PG || b != a + PG) {
            if (fails++ < 5) cf_fail("mapping %lx-%lx is not one of the program's", a, b);
            continue;
        }
        if (pr != prot_of(i) && fails++ < 5)
            cf_fail("protection of mapping %d: expected %d, got %d", i, prot_of(i), pr);
        seen++;
    }
    fclose(f);
    CF_EQ("mappings in the range", N, seen);
}

CF_MAIN
