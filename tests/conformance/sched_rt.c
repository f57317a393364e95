/* Real-time and deadline scheduling per thread: SCHED_RR in the main thread, SCHED_FIFO with
 * SCHED_RESET_ON_FORK in a second one, SCHED_DEADLINE (runtime, deadline, period) in a
 * third, each with the nice value it had before, read back with sched_getattr.
 * kind: scheduling
 * checks: policy, real-time priority, SCHED_RESET_ON_FORK, deadline parameters and nice value of each thread
 * root: restored
 * user: skip: an ordinary user cannot choose a real-time policy (RLIMIT_RTPRIO is 0)
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#ifndef SCHED_DEADLINE
#define SCHED_DEADLINE 6
#endif

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t prio;
    uint64_t runtime, deadline, period;
};

static struct attr want[3] = {
    {sizeof(struct attr), SCHED_RR, 0, 5, 20, 0, 0, 0},
    {sizeof(struct attr), SCHED_FIFO, 1, 3, 30, 0, 0, 0},
    {sizeof(struct attr), SCHED_DEADLINE, 0, 2, 0, 2000000, 50000000, 100000000},
};

static void set_mine(int i) {
    CF_TRY(setpriority(PRIO_PROCESS, 0, want[i].nice));
    struct attr a = want[i];
    a.nice = 0;
    CF_TRY(syscall(SYS_sched_setattr, 0, &a, 0));
}

static void check_tid(int i, pid_t tid) {
    struct attr a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, tid, &a, sizeof a, 0) < 0) {
        cf_fail("sched_getattr(%d): %s", tid, strerror(errno));
        return;
    }
    char what[64];
#define ONE(f, name)                                                                       \
    snprintf(what, sizeof what, "thread %d %s", i, name);                                  \
    CF_EQ(what, want[i].f, a.f);
    ONE(policy, "policy") ONE(prio, "priority") ONE(runtime, "runtime")
    ONE(deadline, "deadline") ONE(period, "period")
    /* sched_getattr shows no nice value for these policies; getpriority does */
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid);
    snprintf(what, sizeof what, "thread %d nice", i);
    CF_EQ(what, want[i].nice, errno ? -100 : nice);
    snprintf(what, sizeof what, "thread %d SCHED_RESET_ON_FORK", i);
    CF_EQ(what, want[i].flags & 1, a.flags & 1);
}

static void worker_check(int i) { check_tid(i, gettid()); }

static void setup(void) {
    if (geteuid() != 0) {
        printf("SETUP FAILED: needs root\n");
        exit(2);
    }
    for (int i = 1; i < 3; i++) cf_start(i, set_mine, worker_check);
    set_mine(0);
}

static void check(void) {
    check_tid(0, gettid());
    for (int i = 1; i < 3; i++) {
        check_tid(i, cf_workers[i].tid);
        cf_ask(i);
    }
}
CF_MAIN
