/* Locked memory: mlock, mlock2(MLOCK_ONFAULT) and mlockall(MCL_FUTURE).
 * kind: memory
 * checks: VM_LOCKED of an mlock()ed mapping and its pages resident, VM_LOCKONFAULT of an mlock2(MLOCK_ONFAULT) mapping, MCL_FUTURE (a mapping created after the restart is locked), contents
 * root: restored
 */
#include "conformance.h"
#include "cf_vmflags.h"
#include <sys/mman.h>
#include <sys/syscall.h>

#define PG 4096
#define LEN (16 * PG)

static char *locked, *onfault;

static void setup(void) {
    locked = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    onfault = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (locked == MAP_FAILED || onfault == MAP_FAILED) CF_TRY(-1);
    CF_TRY(mlock(locked, LEN));
    CF_TRY(syscall(SYS_mlock2, onfault, LEN, 1 /* MLOCK_ONFAULT */));
    for (int i = 0; i < LEN / PG; i++) snprintf(locked + i * PG, 32, "locked %d", i);
    snprintf(onfault, 32, "on fault");
    CF_TRY(mlockall(MCL_FUTURE));
}

static void check(void) {
    char flags[512];
    cf_vmflags(locked, flags, sizeof flags, NULL);
    if (!cf_has_flag(flags, "lo")) cf_fail("mlock: VmFlags \"%s\" lack lo", flags);
    unsigned char vec[LEN / PG];
    CF_TRY(mincore(locked, LEN, vec));
    for (int i = 0; i < LEN / PG; i++) {
        char want[32];
        snprintf(want, sizeof want, "locked %d", i);
        if (!(vec[i] & 1)) cf_fail("mlock: page %d is not resident", i);
        if (strcmp(locked + i * PG, want) != 0) cf_fail("mlock: page %d holds %.20s", i, locked + i * PG);
    }
    cf_vmflags(onfault, flags, sizeof flags, NULL);
    if (!cf_has_flag(flags, "lo") || !cf_has_flag(flags, "lf"))
        cf_fail("mlock2(MLOCK_ONFAULT): VmFlags \"%s\" lack lo lf", flags);
    if (strcmp(onfault, "on fault") != 0) cf_fail("mlock2: holds %.20s", onfault);
    /* MCL_FUTURE: a new mapping is locked and populated. */
    char *fresh = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED) CF_TRY(-1);
    cf_vmflags(fresh, flags, sizeof flags, NULL);
    if (!cf_has_flag(flags, "lo")) cf_fail("mlockall(MCL_FUTURE): a new mapping's VmFlags \"%s\" lack lo", flags);
    if (cf_has_flag(flags, "lf")) cf_fail("mlockall(MCL_FUTURE): a new mapping is lock-on-fault");
    CF_TRY(munmap(fresh, PG));
}

CF_MAIN
