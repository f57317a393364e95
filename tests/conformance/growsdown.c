/* A MAP_GROWSDOWN mapping (a stack made by hand) and its growth below its start.
 * kind: memory
 * checks: VM_GROWSDOWN, the mapping growing when the page below it is touched, contents
 * root: restored
 */
#include "conformance.h"
#include "cf_vmflags.h"
#include <sys/mman.h>

#define PG 4096
#define GAP (8 << 20)

static char *top; /* one past the mapping's end */
static int grown;

static void setup(void) {
    /* A free gap well above the kernel's stack guard gap below the mapping. */
    char *hole = mmap(NULL, GAP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hole == MAP_FAILED) CF_TRY(-1);
    CF_TRY(munmap(hole, GAP));
    top = hole + GAP;
    char *p = mmap(top - 4 * PG, 4 * PG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) CF_TRY(-1);
    for (int i = 1; i <= 4; i++) snprintf(top - i * PG, 32, "stack page %d", i);
}

static void check(void) {
    char flags[512];
    unsigned long r[2] = {0, 0};
    cf_vmflags(top - PG, flags, sizeof flags, r);
    if (!cf_has_flag(flags, "gd")) cf_fail("VmFlags \"%s\" lack gd", flags);
    CF_EQ("end of the mapping", (unsigned long)top, r[1]);
    CF_EQ("start of the mapping", (unsigned long)top - (4 + grown) * PG, r[0]);
    for (int i = 1; i <= 4 + grown; i++) {
        char want[32];
        snprintf(want, sizeof want, "stack page %d", i);
        if (strcmp(top - i * PG, want) != 0) cf_fail("stack page %d holds %.20s", i, top - i * PG);
    }
    /* Touch the page below: the mapping grows by one page. */
    grown++;
    char *below = top - (4 + grown) * PG;
    snprintf(below, 32, "stack page %d", 4 + grown);
    cf_vmflags(below, flags, sizeof flags, r);
    CF_EQ("start after growing", (unsigned long)below, r[0]);
}

CF_MAIN
