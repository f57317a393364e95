/* What a parent can still collect about its stopped children: one stopped by SIGTSTP and one
 * by SIGTTIN that it has not waited for (waitid(WSTOPPED|WNOWAIT) and waitpid(WUNTRACED)
 * report them with their signals), one stopped by SIGSTOP and collected (nothing to report),
 * one stopped and continued (a WCONTINUED report); the SIGCHLD they sent is pending (blocked)
 * at the first check, which takes it, and no other may arrive.
 * kind: stopped processes
 * checks: state of each child, waitid WSTOPPED/WCONTINUED reports with signal, waitpid WUNTRACED, no extra SIGCHLD
 * root: restored
 */
#include "conformance.h"
#include <sys/wait.h>

#define N 4
static pid_t kid[N];
static int round_no;
/* what the parent can collect: code (0 none), status */
static const int code[N] = {CLD_STOPPED, CLD_STOPPED, 0, CLD_CONTINUED};
static const int status[N] = {SIGTSTP, SIGTTIN, 0, SIGCONT};
static const char want_state[N] = {'T', 'T', 'T', 'S'};

static char state_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        if (f) fclose(f);
        return '?';
    }
    fclose(f);
    return strrchr(buf, ')')[2];
}

static void wait_state(pid_t pid, char want) {
    for (int i = 0; i < 500 && state_of(pid) != want; i++) usleep(10000);
    if (state_of(pid) != want) {
        printf("SETUP FAILED: child %d not in state %c\n", pid, want);
        exit(2);
    }
}

static void setup(void) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    for (int i = 0; i < N; i++) {
        kid[i] = fork();
        CF_TRY(kid[i]);
        if (kid[i] == 0) {
            /* A group of its own whose parent is in another group of the session: never
             * orphaned, wherever the program runs (the kernel discards SIGTSTP and SIGTTIN
             * in an orphaned group, as the program's own group may be under a test runner). */
            setpgid(0, 0);
            sigprocmask(SIG_UNBLOCK, &chld, NULL);
            for (;;) pause();
        }
        setpgid(kid[i], kid[i]);
    }
    CF_TRY(kill(kid[0], SIGTSTP));
    CF_TRY(kill(kid[1], SIGTTIN));
    CF_TRY(kill(kid[2], SIGSTOP));
    CF_TRY(kill(kid[3], SIGSTOP));
    for (int i = 0; i < N; i++) wait_state(kid[i], 'T');
    int st;
    CF_TRY(waitpid(kid[2], &st, WUNTRACED));
    /* collect kid 3's stop, then continue it and leave the continued report */
    CF_TRY(waitpid(kid[3], &st, WUNTRACED));
    CF_TRY(kill(kid[3], SIGCONT));
    wait_state(kid[3], 'S');
    usleep(50000);
}

static void check(void) {
    round_no++;
    char what[80];
    for (int i = 0; i < N; i++) {
        snprintf(what, sizeof what, "child %d state", i);
        CF_EQ(what, want_state[i], state_of(kid[i]));
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, kid[i], &si, WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) < 0)
            cf_fail("waitid of child %d: %s", i, strerror(errno));
        snprintf(what, sizeof what, "child %d report code", i);
        CF_EQ(what, code[i], si.si_pid ? si.si_code : 0);
        snprintf(what, sizeof what, "child %d report status", i);
        CF_EQ(what, status[i], si.si_pid ? si.si_status : 0);
    }
    /* pending (blocked) at the first check, which takes it: none may come after */
    sigset_t pend, chld;
    sigpending(&pend);
    CF_EQ("SIGCHLD pending", round_no == 1, sigismember(&pend, SIGCHLD));
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec zero = {0, 0};
    sigtimedwait(&chld, NULL, &zero);
    if (round_no < CF_CHECKS) return;
    /* Last round: collect for real, wake and end them. */
    int st = 0;
    if (waitpid(kid[0], &st, WUNTRACED | WNOHANG) != kid[0]) cf_fail("waitpid(WUNTRACED) of child 0");
    else CF_EQ("child 0 WSTOPSIG", SIGTSTP, WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
    st = 0;
    if (waitpid(kid[1], &st, WUNTRACED | WNOHANG) != kid[1]) cf_fail("waitpid(WUNTRACED) of child 1");
    else CF_EQ("child 1 WSTOPSIG", SIGTTIN, WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
    CF_EQ("child 2 has nothing to collect", 0, waitpid(kid[2], &st, WUNTRACED | WNOHANG));
    st = 0;
    if (waitpid(kid[3], &st, WCONTINUED | WNOHANG) != kid[3]) cf_fail("waitpid(WCONTINUED) of child 3");
    else CF_EQ("child 3 WIFCONTINUED", 1, WIFCONTINUED(st));
    for (int i = 0; i < N; i++) {
        kill(kid[i], SIGCONT);
        kill(kid[i], SIGKILL);
        waitpid(kid[i], NULL, 0);
    }
}
CF_MAIN
