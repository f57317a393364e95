/* Kernel state that must survive a restore: a SIGALRM handler on an alternate stack driven by
 * an interval timer, a blocked pending SIGUSR1, the thread name, umask and cwd. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t ticks, usr1, on_alt;
static char altstack[65536];
static void on_alrm(int s) {
    (void)s;
    int here;
    if ((char *)&here >= altstack && (char *)&here < altstack + sizeof altstack) on_alt++;
    ticks++;
}
static void on_usr1(int s) { (void)s; usr1 = 1; }
static volatile sig_atomic_t usr2, finish;
static void on_usr2(int s) { (void)s; usr2 = 1; }
/* A second thread with a thread-directed SIGUSR2 pending while blocked. */
static void *second(void *arg) {
    (void)arg;
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &m, NULL);
    pthread_kill(pthread_self(), SIGUSR2);
    while (!finish) usleep(1000);
    sigset_t p;
    sigpending(&p);
    int pend = sigismember(&p, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &m, NULL);
    return (void *)(long)(pend * 10 + usr2);
}
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    if (chdir("/tmp") != 0) return 2;
    umask(027);
    prctl(PR_SET_NAME, "cairn-sig");
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {0};
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGUSR1);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, NULL); /* inherited: the thread never takes SIGALRM */
    pthread_t th;
    pthread_create(&th, NULL, second, NULL);
    pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
    struct itimerval it = {{0, 3000}, {0, 3000}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (ticks < 150) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    it = (struct itimerval){{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    fprintf(f, "ticks ok, on alt stack: %s\n", on_alt == ticks ? "always" : "not always");
    sigset_t p;
    sigpending(&p);
    fprintf(f, "usr1 pending: %d\n", sigismember(&p, SIGUSR1));
    stack_t old;
    sigaltstack(NULL, &old);
    fprintf(f, "altstack: %d\n", old.ss_sp == altstack && old.ss_size == sizeof altstack);
    char name[16] = {0};
    prctl(PR_GET_NAME, name);
    fprintf(f, "name: %s\n", name);
    mode_t u = umask(0);
    fprintf(f, "umask: %o\n", (unsigned)u);
    char cwd[256];
    fprintf(f, "cwd: %s\n", getcwd(cwd, sizeof cwd));
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    fprintf(f, "usr1 delivered: %d\n", (int)usr1);
    finish = 1;
    void *r;
    pthread_join(th, &r);
    fprintf(f, "thread usr2 pending+delivered: %ld\n", (long)r);
    return fclose(f) == 0 ? 0 : 3;
}
