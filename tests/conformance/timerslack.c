/* The timer slack of each thread (it is per thread), read with PR_GET_TIMERSLACK in the
 * thread and, for the main thread, /proc/self/timerslack_ns.
 * kind: scheduling
 * checks: PR_GET_TIMERSLACK of each thread, /proc/self/timerslack_ns
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/prctl.h>

static const unsigned long want[] = {123457, 1000, 7777777, 50001};

static void set_mine(int i) { CF_TRY(prctl(PR_SET_TIMERSLACK, want[i], 0, 0, 0)); }

static void check_me(int i) {
    char what[64];
    snprintf(what, sizeof what, "thread %d PR_GET_TIMERSLACK", i);
    CF_EQ(what, want[i], prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
}

static void setup(void) {
    for (int i = 1; i < 4; i++) cf_start(i, set_mine, check_me);
    set_mine(0);
}

static void check(void) {
    check_me(0);
    for (int i = 1; i < 4; i++) cf_ask(i);
    FILE *f = fopen("/proc/self/timerslack_ns", "r");
    unsigned long v = 0;
    if (!f || fscanf(f, "%lu", &v) != 1) cf_fail("reading /proc/self/timerslack_ns");
    else CF_EQ("/proc/self/timerslack_ns", want[0], v);
    if (f) fclose(f);
}
CF_MAIN
