/* signalfd(2) conformance across checkpoints: the accepted signals (changed while running),
 * SFD_NONBLOCK, and signals left pending across the checkpoint (a standard one and a queued
 * real-time one with its value) read through the signalfd afterwards.
 * Usage: signalfd STEPS. Prints "step N ok" or "FAIL ..." with the difference. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int bad;

static void fail(int step, const char *what, unsigned long long want, unsigned long long got) {
    printf("FAIL step %d: %s: expected %#llx, got %#llx\n", step, what, want, got);
    bad++;
}

static unsigned long long sigmask_info(int fd) {
    char path[64], line[256];
    unsigned long long v = 0;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f) return ~0ULL;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "sigmask:", 8) == 0) v = strtoull(line + 8, NULL, 16);
    fclose(f);
    return v;
}

static unsigned long long bit(int sig) { return 1ULL << (sig - 1); }

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    int rt = SIGRTMIN + 2;
    sigset_t block, accept;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, rt);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigemptyset(&accept);
    sigaddset(&accept, SIGUSR1);
    sigaddset(&accept, rt);
    int sfd = signalfd(-1, &accept, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) { perror("signalfd"); return 2; }
    unsigned long long want = bit(SIGUSR1) | bit(rt);
    int pending = 0;
    for (int i = 1; i <= steps; i++) {
        if (sigmask_info(sfd) != want) fail(i, "sigmask", want, sigmask_info(sfd));
        if (!(fcntl(sfd, F_GETFL) & O_NONBLOCK)) fail(i, "O_NONBLOCK", 1, 0);
        struct signalfd_siginfo si;
        if (pending) {
            /* Left pending before the sleep: the lowest number first. */
            if (read(sfd, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR1)
                fail(i, "pending SIGUSR1", SIGUSR1, si.ssi_signo);
            if (want & bit(SIGUSR2)) {
                if (read(sfd, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR2)
                    fail(i, "pending SIGUSR2", SIGUSR2, si.ssi_signo);
            }
            if (read(sfd, &si, sizeof si) != sizeof si || si.ssi_signo != (unsigned)rt ||
                si.ssi_int != i - 1)
                fail(i, "pending queued signal value", i - 1, si.ssi_int);
        }
        errno = 0;
        if (read(sfd, &si, sizeof si) >= 0 || errno != EAGAIN) fail(i, "EAGAIN when nothing is pending", EAGAIN, errno);
        if (i == steps / 2) {
            /* Accept SIGUSR2 too from now on. */
            sigaddset(&accept, SIGUSR2);
            if (signalfd(sfd, &accept, 0) != sfd) fail(i, "changing the mask", sfd, 0);
            want |= bit(SIGUSR2);
        }
        raise(SIGUSR1);
        union sigval v = {.sival_int = i};
        sigqueue(getpid(), rt, v);
        if (want & bit(SIGUSR2)) raise(SIGUSR2);
        pending = 1;
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    printf("%s\n", bad ? "FAIL" : "PASS");
    return 0;
}
