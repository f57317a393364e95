/* A session whose leader has exited: its first member was adopted by the job's init, a child
 * of that member leads a group of its own in the session.
 * kind: process tree
 * checks: getsid (the exited leader's pid) and getpgid of the members, pids and parents
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cf_workers.h"

static void setup(void) {
    open_pipes(2);
    pid_t leader = fork();
    CF_TRY(leader);
    if (leader == 0) {
        if (setsid() < 0) _exit(2);
        pid_t m = fork();
        if (m < 0) _exit(2);
        if (m == 0) {
            pid_t c = fork();
            if (c < 0) _exit(2);
            if (c == 0) {
                if (setpgid(0, 0) < 0) _exit(2);
                serve(1);
            }
            serve(0);
        }
        _exit(0);
    }
    int st;
    CF_TRY(waitpid(leader, &st, 0));
    for (int tries = 0; tries < 2000; tries++) {
        struct who c = ask(1);
        if (c.pgid == c.pid) break;
        usleep(1000);
    }
    record_all();
    if (expected[0].sid != leader || expected[1].sid != leader || expected[0].pgid != leader ||
        expected[1].pgid != expected[1].pid) {
        printf("SETUP FAILED: the layout is not the intended one\n");
        exit(2);
    }
}

static void check(void) { check_all(); }
CF_MAIN
