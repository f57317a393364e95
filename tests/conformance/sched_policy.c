/* Scheduling policies an ordinary user may choose, per thread: SCHED_OTHER with a nice value,
 * SCHED_BATCH, SCHED_IDLE, and SCHED_RESET_ON_FORK, read back with sched_getattr for every
 * thread.
 * kind: scheduling
 * checks: policy, nice value and SCHED_RESET_ON_FORK of each thread (sched_getattr, /proc/self/task/TID/stat)
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t prio;
    uint64_t runtime, deadline, period;
};

/* index: policy, nice, flags */
static const struct { uint32_t policy; int nice; uint64_t flags; } want[] = {
    {SCHED_OTHER, 4, 0},
    {SCHED_BATCH, 6, 0},
    {SCHED_IDLE, 9, 0},
    {SCHED_OTHER, 11, 1 /* SCHED_FLAG_RESET_ON_FORK */},
    {SCHED_BATCH, 2, 1},
};
#define N (int)(sizeof want / sizeof want[0])

static void set_mine(int i) {
    /* sched_setattr leaves the nice value of a SCHED_IDLE thread alone: set it first. */
    CF_TRY(setpriority(PRIO_PROCESS, 0, want[i].nice));
    struct attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = want[i].policy;
    a.nice = want[i].nice;
    a.flags = want[i].flags;
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
    snprintf(what, sizeof what, "thread %d policy", i);
    CF_EQ(what, want[i].policy, a.policy);
    snprintf(what, sizeof what, "thread %d nice", i);
    CF_EQ(what, want[i].nice, a.nice);
    snprintf(what, sizeof what, "thread %d SCHED_RESET_ON_FORK", i);
    CF_EQ(what, want[i].flags & 1, a.flags & 1);
    /* /proc/self/task/TID/stat: field 19 nice, field 41 policy */
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        cf_fail("reading %s", path);
        if (f) fclose(f);
        return;
    }
    fclose(f);
    char *p = strrchr(buf, ')') + 2;
    long field[64];
    int n = 3;
    for (char *tok = strtok(p, " "); tok && n < 64; tok = strtok(NULL, " ")) field[n++] = atol(tok);
    snprintf(what, sizeof what, "thread %d nice in stat", i);
    CF_EQ(what, want[i].nice, field[19 + 0]);
    snprintf(what, sizeof what, "thread %d policy in stat", i);
    CF_EQ(what, want[i].policy, field[41]);
}

static void noop(int i) { (void)i; }
static void worker_check(int i) { check_tid(i, gettid()); }

static void setup(void) {
    /* Workers first: an ordinary user cannot lower a nice value they would inherit. */
    for (int i = 1; i < N; i++) cf_start(i, set_mine, worker_check);
    set_mine(0);
}

static void check(void) {
    check_tid(0, gettid());
    for (int i = 1; i < N; i++) {
        check_tid(i, cf_workers[i].tid);
        cf_ask(i);
    }
    (void)noop;
}
CF_MAIN
