/* Zombies keep their process group (one leads its own, which a live process joined after the * leader exited) and their exit status until they are reaped.
 * kind: process tree
 * checks: zombie state, getpgid of each zombie and of the live member, the exit status and how each ended (exit code, signal) as waitid(WNOWAIT) reports it
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cf_workers.h"

/* The state letter of /proc/PID/stat (0: gone), and its parent. */
static char proc_state(pid_t pid, int *ppid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    char st = 0;
    int pp = 0;
    if (p) sscanf(p + 2, "%c %d", &st, &pp);
    if (ppid) *ppid = pp;
    return st;
}

static pid_t z1, z2;

static void setup(void) {
    open_pipes(1);
    z1 = fork();
    CF_TRY(z1);
    if (z1 == 0) {
        setpgid(0, 0);
        _exit(7);
    }
    setpgid(z1, z1); /* whichever runs first, the group exists before z1 exits */
    z2 = fork();
    CF_TRY(z2);
    if (z2 == 0) {
        for (;;) pause();
    }
    CF_TRY(kill(z2, SIGTERM));
    for (int i = 0; i < 5000 && (proc_state(z1, NULL) != 'Z' || proc_state(z2, NULL) != 'Z'); i++)
        usleep(1000);
    pid_t w = fork();
    CF_TRY(w);
    if (w == 0) {
        if (setpgid(0, z1) < 0) _exit(2);
        serve(0);
    }
    for (int tries = 0; tries < 2000; tries++) {
        if (ask(0).pgid == z1) break;
        usleep(1000);
    }
    record_all();
    if (expected[0].pgid != z1) {
        printf("SETUP FAILED: the live process did not join the zombie's group\n");
        exit(2);
    }
}

static void check_zombie(const char *name, pid_t z, pid_t pgid, int code, int status) {
    char what[64];
    snprintf(what, sizeof what, "%s state", name);
    CF_EQ(what, 'Z', proc_state(z, NULL));
    snprintf(what, sizeof what, "getpgid(%s)", name);
    CF_EQ(what, pgid, getpgid(z));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, z, &si, WEXITED | WNOWAIT | WNOHANG) < 0) {
        cf_fail("waitid(%s): %s", name, strerror(errno));
        return;
    }
    snprintf(what, sizeof what, "%s si_pid", name);
    CF_EQ(what, z, si.si_pid);
    snprintf(what, sizeof what, "%s si_code", name);
    CF_EQ(what, code, si.si_code);
    snprintf(what, sizeof what, "%s si_status", name);
    CF_EQ(what, status, si.si_status);
}

static int checks_done;

static void check(void) {
    check_all();
    check_zombie("zombie 1", z1, z1, CLD_EXITED, 7);
    check_zombie("zombie 2", z2, getpgid(0), CLD_KILLED, SIGTERM);
    if (++checks_done == CF_CHECKS) {
        /* Reaped at last: the statuses as waitpid gives them. */
        int st;
        CF_EQ("waitpid(zombie 1)", z1, waitpid(z1, &st, WNOHANG));
        CF_EQ("zombie 1 exit code", 7, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        CF_EQ("waitpid(zombie 2)", z2, waitpid(z2, &st, WNOHANG));
        CF_EQ("zombie 2 signal", SIGTERM, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    }
}
CF_MAIN
