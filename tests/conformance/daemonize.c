/* A daemon: double fork and setsid; its parent, which called setsid (so it led the daemon's
 * session and group), has exited; the daemon is adopted by the job's init and keeps working.
 * kind: process tree
 * checks: the daemon runs on (counter advances), its parent (the init), session and group (both led by an exited process), after restart
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int report[2], ask[2];
static pid_t daemon_pid, leader, adopter;

/* The daemon: counts in a loop; on a request byte replies with its view of itself. */
static void daemon_main(void) {
    volatile unsigned long counter = 0;
    close(ask[1]);
    close(report[0]);
    prctl(PR_SET_NAME, "daemon"); /* the runner signals the first process by its name */
    fcntl(ask[0], F_SETFL, O_NONBLOCK);
    for (;;) {
        char c;
        counter++;
        ssize_t r = read(ask[0], &c, 1);
        if (r == 0) _exit(0); /* the first process has ended: so does the daemon */
        if (r == 1) {
            long v[5] = {getpid(), getppid(), getsid(0), getpgid(0), (long)counter};
            if (write(report[1], v, sizeof v) != sizeof v) _exit(3);
        }
        usleep(1000);
    }
}

static void setup(void) {
    CF_TRY(pipe(report));
    CF_TRY(pipe(ask));
    int idp[2];
    CF_TRY(pipe(idp));
    pid_t first = fork();
    CF_TRY(first);
    if (first == 0) {
        setsid();
        pid_t second = fork();
        if (second < 0) _exit(2);
        if (second == 0) {
            daemon_main();
        }
        pid_t ids[2] = {getpid(), second};
        if (write(idp[1], ids, sizeof ids) != sizeof ids) _exit(2);
        _exit(0);
    }
    pid_t ids[2];
    if (read(idp[0], ids, sizeof ids) != sizeof ids) exit(2);
    leader = ids[0];
    daemon_pid = ids[1];
    int st;
    CF_TRY(waitpid(first, &st, 0));
    /* The daemon is adopted once its parent exited and was reaped. */
    for (int i = 0; i < 1000; i++) {
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", daemon_pid);
        FILE *f = fopen(path, "r");
        if (!f) break;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        int ppid = 0;
        if (p) sscanf(p + 2, "%*c %d", &ppid);
        if (ppid != first) {
            adopter = ppid;
            break;
        }
        usleep(1000);
    }
    if (!adopter) {
        printf("SETUP FAILED: the daemon was not adopted\n");
        exit(2);
    }
}

static long last_counter;

static void check(void) {
    long v[5];
    if (write(ask[1], "?", 1) != 1 || read(report[0], v, sizeof v) != sizeof v) {
        cf_fail("the daemon does not answer");
        return;
    }
    CF_EQ("daemon pid", daemon_pid, v[0]);
    CF_EQ("daemon parent (the process that adopted it)", adopter, v[1]);
    CF_EQ("daemon session (its exited leader's)", leader, v[2]);
    CF_EQ("daemon group (its exited leader's)", leader, v[3]);
    if (v[4] <= last_counter) cf_fail("daemon counter: expected more than %ld, got %ld", last_counter, v[4]);
    last_counter = v[4];
    CF_EQ("getsid(daemon) seen from here", leader, getsid(daemon_pid));
    CF_EQ("getpgid(daemon) seen from here", leader, getpgid(daemon_pid));
}
CF_MAIN
