/* The name of each thread (the main thread keeps the program's name, which the runner finds
 * it by), read with pthread_getname_np and /proc/self/task/TID/comm.
 * kind: process attributes
 * checks: name of each thread
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"

static const char *want[] = {NULL, "worker-one", "w2", "fifteen-chars-x", "ä-utf8"};
#define N 5

static void set_mine(int i) {
    if (pthread_setname_np(pthread_self(), want[i]) != 0) exit(2);
}

static void check_tid(int i, pid_t tid, const char *name) {
    char path[64], buf[64] = {0}, what[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) cf_fail("reading %s", path);
    if (f) fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    snprintf(what, sizeof what, "thread %d comm", i);
    CF_STREQ(what, name, buf);
}

static void check_me(int i) {
    char name[32] = {0};
    pthread_getname_np(pthread_self(), name, sizeof name);
    char what[64];
    snprintf(what, sizeof what, "thread %d pthread_getname_np", i);
    CF_STREQ(what, want[i], name);
}

static void setup(void) {
    for (int i = 1; i < N; i++) cf_start(i, set_mine, check_me);
}

static void check(void) {
    check_tid(0, gettid(), "thread_names");
    for (int i = 1; i < N; i++) {
        check_tid(i, cf_workers[i].tid, want[i]);
        cf_ask(i);
    }
}
CF_MAIN
