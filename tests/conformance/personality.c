/* The personality of each thread: ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC in the main thread
 * (a new PROT_READ mapping is then executable), UNAME26 in addition in a second one (uname
 * then reports a 2.6 kernel).
 * kind: process attributes
 * checks: personality(0xffffffff) of each thread, the r-x of a new PROT_READ mapping, uname's release under UNAME26
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/utsname.h>

static const unsigned long want[] = {ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC,
                                     ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC | UNAME26};

static void set_mine(int i) { CF_TRY(personality(want[i])); }

static void check_me(int i) {
    char what[64];
    snprintf(what, sizeof what, "thread %d personality", i);
    CF_EQ(what, want[i], personality(0xffffffff));
    struct utsname u;
    uname(&u);
    snprintf(what, sizeof what, "thread %d uname release starts with 2.6 (UNAME26)", i);
    CF_EQ(what, !!(want[i] & UNAME26), strncmp(u.release, "2.6", 3) == 0);
}

static void check(void) {
    check_me(0);
    cf_ask(1);
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char line[512], want_start[32];
    snprintf(want_start, sizeof want_start, "%lx-", (unsigned long)p);
    FILE *f = fopen("/proc/self/maps", "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, want_start, strlen(want_start))) {
            found = 1;
            char perms[5] = {0};
            sscanf(line, "%*s %4s", perms);
            CF_STREQ("PROT_READ mapping under READ_IMPLIES_EXEC", "r-xp", perms);
        }
    if (f) fclose(f);
    if (!found) cf_fail("new mapping not in /proc/self/maps");
    munmap(p, 4096);
}

static void setup(void) {
    cf_start(1, set_mine, check_me);
    set_mine(0);
}
CF_MAIN
