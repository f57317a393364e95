/* The I/O priority of each thread (it is per thread): best-effort levels, the idle class,
 * and a thread without one of its own (class IOPRIO_CLASS_NONE: the block layer derives it
 * from the nice value), which must still have none after a restart, whatever its nice value.
 * kind: scheduling
 * checks: ioprio_get of each thread; a thread without an I/O priority keeps none, also after a change of its nice value
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/resource.h>
#include <sys/syscall.h>

#define WHO_PROCESS 1
#define CLASS_BE 2
#define CLASS_IDLE 3
#define PRIO(c, l) ((c) << 13 | (l))

/* -1: none of its own (and nice 10) */
static const int want[] = {PRIO(CLASS_BE, 6), PRIO(CLASS_IDLE, 0), PRIO(CLASS_BE, 2), -1};
#define N 4
static int round_no;

static int get(pid_t tid) { return syscall(SYS_ioprio_get, WHO_PROCESS, tid); }

static void set_mine(int i) {
    if (want[i] >= 0) CF_TRY(syscall(SYS_ioprio_set, WHO_PROCESS, 0, want[i]));
    else CF_TRY(setpriority(PRIO_PROCESS, 0, 10));
}

static void check_me(int i) {
    char what[64];
    snprintf(what, sizeof what, "thread %d ioprio", i);
    CF_EQ(what, want[i] >= 0 ? want[i] : 0, get(gettid()));
    if (want[i] < 0 && round_no == CF_CHECKS) {
        setpriority(PRIO_PROCESS, 0, 15);
        CF_EQ("ioprio after nice 15", 0, get(gettid()));
    }
}

static void setup(void) {
    for (int i = 1; i < N; i++) cf_start(i, set_mine, check_me);
    set_mine(0);
}

static void check(void) {
    round_no++;
    check_me(0);
    for (int i = 1; i < N; i++) cf_ask(i);
}
CF_MAIN
