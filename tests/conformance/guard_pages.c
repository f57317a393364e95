/* Guard pages: PROT_NONE sub-ranges made with mprotect, and guard regions (MADV_GUARD_INSTALL).
 * kind: memory
 * checks: protection of each mprotect()ed sub-range, a fault on touching a PROT_NONE guard page and a guard region, guard regions in pagemap, contents around them
 * root: restored
 */
#include "conformance.h"
#include "cf_vmflags.h"
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>

#define PG 4096
#define MADV_GUARD_INSTALL_ 102

static char *area, *guarded;
static sigjmp_buf jb;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(jb, 1);
}

/* 1 when reading `p` faults. */
static int faults(volatile char *p) {
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, &old);
    int r = 1;
    if (sigsetjmp(jb, 1) == 0) {
        (void)*p;
        r = 0;
    }
    sigaction(SIGSEGV, &old, NULL);
    return r;
}

static void setup(void) {
    /* 8 pages: data, PROT_NONE guard, data read-only, data, PROT_NONE guard x2, data x2. */
    area = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) CF_TRY(-1);
    for (int i = 0; i < 8; i++) snprintf(area + i * PG, 32, "area %d", i);
    CF_TRY(mprotect(area + PG, PG, PROT_NONE));
    CF_TRY(mprotect(area + 2 * PG, PG, PROT_READ));
    CF_TRY(mprotect(area + 4 * PG, 2 * PG, PROT_NONE));
    /* 4 pages, the second a guard region. */
    guarded = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guarded == MAP_FAILED) CF_TRY(-1);
    for (int i = 0; i < 4; i++) snprintf(guarded + i * PG, 32, "guarded %d", i);
    CF_TRY(madvise(guarded + PG, PG, MADV_GUARD_INSTALL_));
}

static void check(void) {
    static const int prot[8] = {3, 0, 1, 3, 0, 0, 3, 3};
    for (int i = 0; i < 8; i++) {
        char flags[512];
        unsigned long r[2] = {0, 0};
        cf_vmflags(area + i * PG, flags, sizeof flags, r);
        int p = (cf_has_flag(flags, "rd") ? PROT_READ : 0) | (cf_has_flag(flags, "wr") ? PROT_WRITE : 0);
        if (p != prot[i]) cf_fail("page %d of the area: protection %d, expected %d", i, p, prot[i]);
        if (prot[i] == 0) {
            if (!faults(area + i * PG)) cf_fail("page %d (PROT_NONE) does not fault", i);
        } else {
            char want[32];
            snprintf(want, sizeof want, "area %d", i);
            if (strcmp(area + i * PG, want) != 0) cf_fail("page %d holds %.20s", i, area + i * PG);
        }
    }
    int fd = open("/proc/self/pagemap", O_RDONLY);
    CF_TRY(fd);
    for (int i = 0; i < 4; i++) {
        uint64_t e = 0;
        CF_TRY(pread(fd, &e, 8, ((uintptr_t)guarded / PG + i) * 8));
        int guard = (e >> 58) & 1;
        if (guard != (i == 1)) cf_fail("guarded page %d: guard region bit %d", i, guard);
        if (i == 1) {
            if (!faults(guarded + i * PG)) cf_fail("the guard region does not fault");
        } else {
            char want[32];
            snprintf(want, sizeof want, "guarded %d", i);
            if (strcmp(guarded + i * PG, want) != 0)
                cf_fail("guarded page %d holds %.20s", i, guarded + i * PG);
        }
    }
    close(fd);
}

CF_MAIN
