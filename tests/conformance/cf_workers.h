/* Worker processes for the process-tree programs: each worker answers a request byte on its
 * own pipe with its pid, parent, session and group as the kernel tells it, so that checks can
 * compare what every process of a layout sees after a restart with what it saw before. */
#ifndef CAIRN_CF_WORKERS_H
#define CAIRN_CF_WORKERS_H
#include "conformance.h"
#include <errno.h>
#include <sys/prctl.h>

/* Workers: each answers a request byte on its own pipe with what the kernel says of it, and
 * ends when the first process has ended (EOF). */
#define MAXW 8
struct who {
    int pid, ppid, sid, pgid;
};
static int req[MAXW][2], rep[2];
static int nworkers;

static void open_pipes(int n) {
    nworkers = n;
    CF_TRY(pipe(rep));
    for (int i = 0; i < n; i++) CF_TRY(pipe(req[i]));
}

/* In worker `me`: keep only its request end and the reply end, then serve. */
static void serve(int me) {
    char name[16];
    snprintf(name, sizeof name, "worker%d", me);
    prctl(PR_SET_NAME, name);
    for (int i = 0; i < nworkers; i++) {
        close(req[i][1]);
        if (i != me) close(req[i][0]);
    }
    close(rep[0]);
    for (;;) {
        char c;
        ssize_t r = read(req[me][0], &c, 1);
        if (r == 0) _exit(0);
        if (r < 0) {
            if (errno == EINTR) continue;
            _exit(3);
        }
        struct who w = {getpid(), getppid(), getsid(0), getpgid(0)};
        if (write(rep[1], &w, sizeof w) != sizeof w) _exit(3);
    }
}

/* Asks worker `k` who it is (exits on a broken protocol). */
static struct who ask(int k) {
    struct who w = {0, 0, 0, 0};
    if (write(req[k][1], "?", 1) != 1 || read(rep[0], &w, sizeof w) != sizeof w) {
        cf_fail("worker %d does not answer", k);
    }
    return w;
}

static struct who expected[MAXW];

/* Setup's end: every worker answers once; their answers are what the checks expect. */
static void record_all(void) {
    for (int i = 0; i < nworkers; i++) expected[i] = ask(i);
    for (int i = 0; i < nworkers; i++) close(req[i][0]);
    close(rep[1]);
}

/* Checks every worker against what setup recorded, and the first process's view of it. */
static void check_all(void) {
    for (int i = 0; i < nworkers; i++) {
        struct who w = ask(i), e = expected[i];
        char what[64];
        snprintf(what, sizeof what, "worker %d pid", i);
        CF_EQ(what, e.pid, w.pid);
        snprintf(what, sizeof what, "worker %d parent", i);
        CF_EQ(what, e.ppid, w.ppid);
        snprintf(what, sizeof what, "worker %d getsid(0)", i);
        CF_EQ(what, e.sid, w.sid);
        snprintf(what, sizeof what, "worker %d getpgid(0)", i);
        CF_EQ(what, e.pgid, w.pgid);
        snprintf(what, sizeof what, "getsid(worker %d)", i);
        CF_EQ(what, e.sid, getsid(e.pid));
        snprintf(what, sizeof what, "getpgid(worker %d)", i);
        CF_EQ(what, e.pgid, getpgid(e.pid));
    }
}

#endif
