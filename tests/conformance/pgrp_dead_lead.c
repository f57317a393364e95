/* A process group whose leader has exited (and was reaped): its members stay in it.
 * kind: process tree
 * checks: getpgid of the members (the exited leader's pid), their sessions, pids and parents
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cf_workers.h"

static void setup(void) {
    open_pipes(2);
    int go[2];
    CF_TRY(pipe(go));
    pid_t leader = fork();
    CF_TRY(leader);
    if (leader == 0) {
        if (setpgid(0, 0) < 0) _exit(2);
        char b;
        if (read(go[0], &b, 1) != 1) _exit(2);
        _exit(0);
    }
    setpgid(leader, leader); /* whichever runs first */
    for (int k = 0; k < 2; k++) {
        pid_t w = fork();
        CF_TRY(w);
        if (w == 0) {
            if (setpgid(0, leader) < 0) _exit(2);
            serve(k);
        }
    }
    /* Both members are in the group before its leader goes. */
    for (int tries = 0; tries < 2000; tries++) {
        struct who a = ask(0), b = ask(1);
        if (a.pgid == leader && b.pgid == leader) break;
        usleep(1000);
    }
    CF_TRY(write(go[1], "x", 1));
    int st;
    CF_TRY(waitpid(leader, &st, 0));
    record_all();
    if (expected[0].pgid != leader || expected[1].pgid != leader) {
        printf("SETUP FAILED: the members are not in the group\n");
        exit(2);
    }
}

static void check(void) {
    check_all();
    if (kill(-expected[0].pgid, 0) < 0) cf_fail("kill(-group, 0): %s", strerror(errno));
}
CF_MAIN
