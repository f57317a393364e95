/* Processes whose parent exited: adopted by the job's init, they keep their session and group.
 * kind: process tree
 * checks: pid, parent (the init that adopted it), session and group of an orphan and of its own child, as they and the first process see them
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cf_workers.h"

static void setup(void) {
    open_pipes(2);
    pid_t mid = fork();
    CF_TRY(mid);
    if (mid == 0) {
        pid_t orphan = fork();
        if (orphan < 0) _exit(2);
        if (orphan == 0) {
            pid_t grandchild = fork();
            if (grandchild < 0) _exit(2);
            if (grandchild == 0) serve(1);
            serve(0);
        }
        _exit(0);
    }
    int st;
    CF_TRY(waitpid(mid, &st, 0));
    /* The orphan was adopted when its parent exited, before that parent could be reaped. */
    record_all();
    if (expected[0].ppid == mid) {
        printf("SETUP FAILED: the orphan was not adopted\n");
        exit(2);
    }
    if (expected[0].sid != getsid(0) || expected[0].pgid != getpgid(0)) {
        printf("SETUP FAILED: the orphan left the session or group\n");
        exit(2);
    }
}

static void check(void) { check_all(); }
CF_MAIN
