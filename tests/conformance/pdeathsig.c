/* The parent-death signal of each thread (it is per thread) and of a child process.
 * kind: process attributes
 * checks: PR_GET_PDEATHSIG of two threads and of a child
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static int to_child[2], from_child[2];
static pid_t child;
static const int want[] = {SIGHUP, SIGTERM, 0};

static void set_mine(int i) {
    if (want[i]) CF_TRY(prctl(PR_SET_PDEATHSIG, want[i], 0, 0, 0));
}

static void check_me(int i) {
    int s = -1;
    prctl(PR_GET_PDEATHSIG, &s, 0, 0, 0);
    char what[64];
    snprintf(what, sizeof what, "thread %d PR_GET_PDEATHSIG", i);
    CF_EQ(what, want[i], s);
}

static void setup(void) {
    cf_start(1, set_mine, check_me);
    cf_start(2, set_mine, check_me);
    set_mine(0);
    CF_TRY(pipe(to_child));
    CF_TRY(pipe(from_child));
    child = fork();
    CF_TRY(child);
    if (child == 0) {
        close(to_child[1]); /* end of file when the parent is gone */
        close(from_child[0]);
        prctl(PR_SET_PDEATHSIG, SIGINT, 0, 0, 0);
        char c;
        while (read(to_child[0], &c, 1) == 1 || errno == EINTR) {
            int s = -1;
            prctl(PR_GET_PDEATHSIG, &s, 0, 0, 0);
            if (write(from_child[1], &s, sizeof s) != sizeof s) _exit(2);
        }
        _exit(0);
    }
}

static void check(void) {
    check_me(0);
    cf_ask(1);
    cf_ask(2);
    char c = 1;
    int s = -1;
    if (write(to_child[1], &c, 1) != 1 || read(from_child[0], &s, sizeof s) != sizeof s)
        cf_fail("child does not answer");
    CF_EQ("child PR_GET_PDEATHSIG", SIGINT, s);
}
CF_MAIN
