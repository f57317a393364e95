/* no_new_privs is a flag of each thread: set in the main thread after a first thread was
 * started (which must not have it) and before a second one (which inherits it).
 * kind: credentials
 * checks: PR_GET_NO_NEW_PRIVS of each thread, the NoNewPrivs line of /proc/self/task/TID/status
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/prctl.h>

static const int want[] = {1, 0, 1};

static int status_nnp(pid_t tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    int v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "NoNewPrivs:", 11)) v = atoi(line + 11);
    if (f) fclose(f);
    return v;
}

static void noop(int i) { (void)i; }

static void check_me(int i) {
    char what[64];
    snprintf(what, sizeof what, "thread %d PR_GET_NO_NEW_PRIVS", i);
    CF_EQ(what, want[i], prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    snprintf(what, sizeof what, "thread %d NoNewPrivs in status", i);
    CF_EQ(what, want[i], status_nnp(gettid()));
}

static void setup(void) {
    cf_start(1, noop, check_me);
    CF_TRY(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    cf_start(2, noop, check_me);
}

static void check(void) {
    check_me(0);
    cf_ask(1);
    cf_ask(2);
}
CF_MAIN
