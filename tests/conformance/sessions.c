/* Several sessions and process groups: a session leader with a child forked before its setsid
 * (left in the old session), a group of its own inside the new session, a process in a group
 * led by another process of its session, a process that left the group it created.
 * kind: process tree
 * checks: getsid and getpgid of every process (as it and the first process see them), pids, parents
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cf_workers.h"

static void setup(void) {
    open_pipes(7);
    int sync[2];
    CF_TRY(pipe(sync));
    /* c1: forks w1 (stays in our session), setsid, forks w2 (own group) which forks w3 (joins
     * c1's group); c1 itself is worker 0. */
    pid_t c1 = fork();
    CF_TRY(c1);
    if (c1 == 0) {
        pid_t w1 = fork();
        if (w1 < 0) _exit(2);
        if (w1 == 0) serve(1);
        if (setsid() < 0) _exit(2);
        pid_t w2 = fork();
        if (w2 < 0) _exit(2);
        if (w2 == 0) {
            if (setpgid(0, 0) < 0) _exit(2);
            pid_t w3 = fork();
            if (w3 < 0) _exit(2);
            if (w3 == 0) {
                if (setpgid(0, getsid(0)) < 0) _exit(2);
                serve(3);
            }
            serve(2);
        }
        serve(0);
    }
    /* c2 (worker 4): creates its group, forks w5 (stays in it) and w6 (creates its own), then
     * moves into w6's group. */
    pid_t c2 = fork();
    CF_TRY(c2);
    if (c2 == 0) {
        if (setpgid(0, 0) < 0) _exit(2);
        pid_t w5 = fork();
        if (w5 < 0) _exit(2);
        if (w5 == 0) serve(5);
        pid_t w6 = fork();
        if (w6 < 0) _exit(2);
        if (w6 == 0) {
            if (setpgid(0, 0) < 0) _exit(2);
            char b = 1;
            if (write(sync[1], &b, 1) != 1) _exit(2);
            serve(6);
        }
        char b;
        if (read(sync[0], &b, 1) != 1 || setpgid(0, w6) < 0) _exit(2);
        serve(4);
    }
    close(sync[0]);
    close(sync[1]);
    /* Let every worker finish its set-up: ask until the layout stands. */
    for (int tries = 0; tries < 2000; tries++) {
        struct who w3 = ask(3), w4 = ask(4), w2 = ask(2);
        if (w3.pgid == c1 && w4.pgid != c2 && w2.pgid == w2.pid) break;
        usleep(1000);
    }
    record_all();
    struct who *e = expected;
    if (e[0].sid != c1 || e[1].sid != getsid(0) || e[2].sid != c1 || e[2].pgid != e[2].pid ||
        e[3].pgid != c1 || e[4].pgid != e[6].pid || e[5].pgid != c2 || e[6].pgid != e[6].pid) {
        printf("SETUP FAILED: the layout is not the intended one\n");
        exit(2);
    }
}

static void check(void) { check_all(); }
CF_MAIN
