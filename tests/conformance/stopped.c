/* A child (two threads) stopped with SIGSTOP, its stop collected by the parent with
 * waitpid(WUNTRACED): after a restart it is stopped again (every thread), does not run, a
 * SIGCONT wakes it (the parent collects the "continued" report with waitid(WCONTINUED)),
 * and the parent stops it again for the next round.
 * kind: stopped processes
 * checks: state T of every thread of the stopped child, no report left to collect, no progress while stopped, SIGCONT wakes it, WCONTINUED and WUNTRACED reports
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <dirent.h>

static pid_t child;
static int req[2], ans[2], round_no;

static void *spin(void *arg) {
    (void)arg;
    for (;;) usleep(1000);
    return NULL;
}

static char state_of(pid_t pid, pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        if (f) fclose(f);
        return '?';
    }
    fclose(f);
    return strrchr(buf, ')')[2];
}

/* Every thread of the child in state `want` ('r': running or sleeping, not stopped). */
static void threads_in(char want, const char *what) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", child);
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        n++;
        char st = state_of(child, atoi(e->d_name));
        if (want == 'r' && (st == 'R' || st == 'S')) continue;
        if (st != want) cf_fail("%s: thread %s of the child in state %c, expected %c", what, e->d_name, st, want);
    }
    if (d) closedir(d);
    CF_EQ("threads of the child", 2, n);
}

static int answers(int ms) {
    struct pollfd p = {ans[0], POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return 0;
    char c;
    return read(ans[0], &c, 1) == 1;
}

static void collect_stop(void) {
    int st = 0;
    if (waitpid(child, &st, WUNTRACED) != child) cf_fail("waitpid(WUNTRACED): %s", strerror(errno));
    else if (!WIFSTOPPED(st)) cf_fail("waitpid(WUNTRACED): status %#x is not a stop", st);
    else CF_EQ("WSTOPSIG", SIGSTOP, WSTOPSIG(st));
}

static void setup(void) {
    CF_TRY(pipe(req));
    CF_TRY(pipe(ans));
    child = fork();
    CF_TRY(child);
    if (child == 0) {
        pthread_t t;
        pthread_create(&t, NULL, spin, NULL);
        char c;
        while (read(req[0], &c, 1) == 1 || errno == EINTR)
            if (write(ans[1], &c, 1) != 1) _exit(2);
        _exit(0);
    }
    char c = 1;
    if (write(req[1], &c, 1) != 1 || !answers(5000)) exit(2);
    usleep(20000); /* the child's second thread is running */
    CF_TRY(kill(child, SIGSTOP));
    collect_stop();
}

static void check(void) {
    round_no++;
    threads_in('T', "stopped");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, child, &si, WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT);
    CF_EQ("a report left to collect (si_pid)", 0, si.si_pid);
    char c = 1;
    if (write(req[1], &c, 1) != 1) cf_fail("writing to the child");
    if (answers(300)) cf_fail("the stopped child answered");
    CF_TRY(kill(child, SIGCONT));
    if (!answers(5000)) cf_fail("the child does not answer after SIGCONT");
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, child, &si, WCONTINUED) < 0) cf_fail("waitid(WCONTINUED): %s", strerror(errno));
    CF_EQ("waitid(WCONTINUED) si_code", CLD_CONTINUED, si.si_code);
    threads_in('r', "continued");
    if (round_no < CF_CHECKS) {
        CF_TRY(kill(child, SIGSTOP));
        collect_stop();
    } else {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
}
CF_MAIN
