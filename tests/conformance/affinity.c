/* A CPU mask per thread: the first thread on the last CPU, the second on the first, the
 * others on all CPUs but one (where the machine has more than one), read back with
 * sched_getaffinity and the Cpus_allowed_list of /proc/self/task/TID/status.
 * kind: scheduling
 * checks: CPU affinity of each thread
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sched.h>

#define N 4
static cpu_set_t want[N];
static int ncpu;

static void set_mine(int i) { CF_TRY(sched_setaffinity(0, sizeof want[i], &want[i])); }

static void list(const cpu_set_t *s, char *out, size_t len) {
    out[0] = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, s)) snprintf(out + strlen(out), len - strlen(out), "%s%d", out[0] ? "," : "", c);
}

static void check_tid(int i, pid_t tid) {
    cpu_set_t got;
    CPU_ZERO(&got);
    if (sched_getaffinity(tid, sizeof got, &got) < 0) {
        cf_fail("sched_getaffinity(%d): %s", tid, strerror(errno));
        return;
    }
    char a[256], b[256], what[64];
    list(&want[i], a, sizeof a);
    list(&got, b, sizeof b);
    snprintf(what, sizeof what, "thread %d CPUs", i);
    CF_STREQ(what, a, b);
    /* Cpus_allowed_list uses ranges: compare the set it names. */
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (!f) { cf_fail("opening %s", path); return; }
    cpu_set_t st;
    CPU_ZERO(&st);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Cpus_allowed_list:", 18)) continue;
        for (char *t = strtok(line + 18, ",\n\t "); t; t = strtok(NULL, ",\n\t ")) {
            int lo, hi;
            if (sscanf(t, "%d-%d", &lo, &hi) == 2) { for (int c = lo; c <= hi; c++) CPU_SET(c, &st); }
            else if (sscanf(t, "%d", &lo) == 1) CPU_SET(lo, &st);
        }
    }
    fclose(f);
    list(&st, b, sizeof b);
    snprintf(what, sizeof what, "thread %d Cpus_allowed_list", i);
    CF_STREQ(what, a, b);
}

static void worker_check(int i) { check_tid(i, gettid()); }

static void setup(void) {
    cpu_set_t all;
    CF_TRY(sched_getaffinity(0, sizeof all, &all));
    int cpus[CPU_SETSIZE];
    for (int c = 0; c < CPU_SETSIZE; c++) if (CPU_ISSET(c, &all)) cpus[ncpu++] = c;
    for (int i = 0; i < N; i++) CPU_ZERO(&want[i]);
    CPU_SET(cpus[ncpu - 1], &want[0]);
    CPU_SET(cpus[0], &want[1]);
    for (int i = 2; i < N; i++)
        for (int k = 0; k < ncpu; k++) if (ncpu == 1 || k != i % ncpu) CPU_SET(cpus[k], &want[i]);
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
