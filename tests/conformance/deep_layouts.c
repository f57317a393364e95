/* Layouts that need a process deep in the tree to rebuild them: an orphan in the session of
 * a live leader that is not a child of the init, and a group whose leader exited in a
 * session with no child of the init.
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
    open_pipes(4);
    int joined[2], leave[2];
    CF_TRY(pipe(joined));
    CF_TRY(pipe(leave));
    /* a1 (worker 0) leads a session; o (worker 1), forked by an exited child of a1, is
     * adopted by the init. */
    pid_t a1 = fork();
    CF_TRY(a1);
    if (a1 == 0) {
        if (setsid() < 0) _exit(2);
        pid_t x = fork();
        if (x < 0) _exit(2);
        if (x == 0) {
            pid_t o = fork();
            if (o < 0) _exit(2);
            if (o == 0) serve(1);
            _exit(0);
        }
        int st;
        if (waitpid(x, &st, 0) < 0) _exit(2);
        serve(0);
    }
    /* a2 (worker 2) leads a session; b creates a group that c (worker 3) joins, then b exits
     * and a2 reaps it. */
    pid_t a2 = fork();
    CF_TRY(a2);
    if (a2 == 0) {
        if (setsid() < 0) _exit(2);
        pid_t b = fork();
        if (b < 0) _exit(2);
        if (b == 0) {
            setpgid(0, 0);
            char c;
            if (read(leave[0], &c, 1) != 1) _exit(2);
            _exit(0);
        }
        setpgid(b, b);
        pid_t c = fork();
        if (c < 0) _exit(2);
        if (c == 0) {
            if (setpgid(0, b) < 0) _exit(2);
            if (write(joined[1], "j", 1) != 1) _exit(2);
            serve(3);
        }
        char ch;
        int st;
        if (read(joined[0], &ch, 1) != 1 || write(leave[1], "l", 1) != 1) _exit(2);
        if (waitpid(b, &st, 0) < 0) _exit(2);
        serve(2);
    }
    close(joined[0]);
    close(joined[1]);
    close(leave[0]);
    close(leave[1]);
    record_all();
    struct who *e = expected;
    if (e[0].sid != a1 || e[1].sid != a1 || e[1].ppid == a1 || e[2].sid != a2 ||
        e[3].sid != a2 || e[3].pgid == a2 || e[3].pgid == e[3].pid) {
        printf("SETUP FAILED: the layout is not the intended one\n");
        exit(2);
    }
}

static void check(void) { check_all(); }
CF_MAIN
