/* A different nice value in each thread (nice is per thread on Linux), read back with
 * getpriority and /proc/self/task/TID/stat for every thread.
 * kind: scheduling
 * checks: nice value of each thread
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/resource.h>

static const int want[] = {3, 7, 12, 19, 1};
#define N (int)(sizeof want / sizeof want[0])

static void set_mine(int i) { CF_TRY(setpriority(PRIO_PROCESS, 0, want[i])); }

static void check_tid(int i, pid_t tid) {
    char what[64];
    errno = 0;
    int got = getpriority(PRIO_PROCESS, tid);
    snprintf(what, sizeof what, "thread %d getpriority", i);
    CF_EQ(what, want[i], errno ? -100 : got);
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
    int n = 3;
    long nice = -100;
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " "), n++)
        if (n == 19) nice = atol(tok);
    snprintf(what, sizeof what, "thread %d nice in stat", i);
    CF_EQ(what, want[i], nice);
}

static void worker_check(int i) { check_tid(i, gettid()); }

static void setup(void) {
    for (int i = 1; i < N; i++) cf_start(i, set_mine, worker_check);
    set_mine(0);
}

static void check(void) {
    check_tid(0, gettid());
    for (int i = 1; i < N; i++) {
        check_tid(i, cf_workers[i].tid);
        cf_ask(i);
    }
}
CF_MAIN
