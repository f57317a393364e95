/* Exit-code test program: prints "ready", waits for SIGUSR2, then exits with CODE, or kills
 * itself with signal SIG when the argument is -SIG. usage: wait_exit CODE|-SIG */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: wait_exit CODE|-SIG\n"); return 2; }
    int n = atoi(argv[1]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    printf("leaving\n");
    fflush(stdout);
    if (n < 0) {
        signal(-n, SIG_DFL);
        raise(-n);
        return 1; /* not reached for a deadly signal */
    }
    return n;
}
