/* signalfd: mask, flags, and signals pending for the process.
 * kind: signalfd
 * checks: the mask (/proc/self/fdinfo sigmask); O_NONBLOCK; pending SIGUSR1 and a queued real-time signal with its value read through the descriptor
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/signalfd.h>

static int sfd;

static void setup(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGRTMIN + 1);
    CF_TRY(sigprocmask(SIG_BLOCK, &m, NULL));
    CF_TRY(sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC));
    CF_TRY(kill(getpid(), SIGUSR1));
    union sigval v = {.sival_int = 4242};
    CF_TRY(sigqueue(getpid(), SIGRTMIN + 1, v));
}

static void check(void) {
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(sfd, F_GETFL) & O_NONBLOCK);
    CF_EQ("FD_CLOEXEC", FD_CLOEXEC, fcntl(sfd, F_GETFD));
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", sfd);
    FILE *f = fopen(path, "r");
    unsigned long long mask = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "sigmask:", 8)) mask = strtoull(line + 8, NULL, 16);
    if (f) fclose(f);
    CF_EQ("sigmask", (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGRTMIN + 1 - 1)), mask);
    struct signalfd_siginfo si[4];
    int got_usr1 = 0, rt_value = 0;
    ssize_t n;
    while ((n = read(sfd, si, sizeof si)) > 0)
        for (int i = 0; i < n / (ssize_t)sizeof si[0]; i++) {
            if ((int)si[i].ssi_signo == SIGUSR1) got_usr1++;
            if ((int)si[i].ssi_signo == SIGRTMIN + 1) rt_value = si[i].ssi_int;
        }
    CF_EQ("pending SIGUSR1 read", 1, got_usr1);
    CF_EQ("queued SIGRTMIN+1 value", 4242, rt_value);
    kill(getpid(), SIGUSR1);
    union sigval v = {.sival_int = 4242};
    sigqueue(getpid(), SIGRTMIN + 1, v);
}

CF_MAIN
