/* Blocked signals pending at the checkpoint, per process and per thread, with queued values.
 * kind: signals
 * checks: signal mask of each thread; standard signals pending for the process and for one thread; queued real-time signals with their sigqueue values and order
 * root: restored
 */
#include "conformance.h"
#include <pthread.h>
#include <sys/syscall.h>

static pthread_t worker;
static volatile int worker_tid;
static int worker_ok = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int round_wanted, round_done;

static int pending_has(int sig) {
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, sig);
}

/* The worker blocks SIGUSR1 and SIGTERM; SIGTERM is pending for it alone. Each round it
 * checks its own mask and pending set. */
static void *work(void *arg) {
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    worker_tid = syscall(SYS_gettid);
    pthread_mutex_lock(&mu);
    for (;;) {
        while (round_done == round_wanted) pthread_cond_wait(&cv, &mu);
        sigset_t cur;
        pthread_sigmask(SIG_BLOCK, NULL, &cur);
        worker_ok = sigismember(&cur, SIGTERM) && sigismember(&cur, SIGALRM) && pending_has(SIGTERM);
        round_done = round_wanted;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

static void setup(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGHUP);
    sigaddset(&s, SIGRTMIN + 2);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGALRM);
    CF_TRY(sigprocmask(SIG_BLOCK, &s, NULL));
    CF_TRY(pthread_create(&worker, NULL, work, NULL));
    while (!worker_tid) usleep(1000);
    CF_TRY(kill(getpid(), SIGHUP));
    union sigval v;
    for (int i = 0; i < 3; i++) {
        v.sival_int = 100 + i;
        CF_TRY(sigqueue(getpid(), SIGRTMIN + 2, v));
    }
    CF_TRY(syscall(SYS_tgkill, getpid(), worker_tid, SIGTERM));
    /* The main thread unblocks SIGTERM and SIGALRM again: the worker's SIGTERM stays its own. */
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGALRM);
    CF_TRY(sigprocmask(SIG_UNBLOCK, &s, NULL));
}

static void check(void) {
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CF_EQ("main mask has SIGHUP", 1, sigismember(&cur, SIGHUP));
    CF_EQ("main mask has SIGRTMIN+2", 1, sigismember(&cur, SIGRTMIN + 2));
    CF_EQ("main mask lacks SIGTERM", 0, sigismember(&cur, SIGTERM));
    CF_EQ("SIGHUP pending", 1, pending_has(SIGHUP));
    CF_EQ("SIGRTMIN+2 pending", 1, pending_has(SIGRTMIN + 2));
    pthread_mutex_lock(&mu);
    round_wanted++;
    pthread_cond_broadcast(&cv);
    while (round_done != round_wanted) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    CF_EQ("worker's mask and its own pending SIGTERM", 1, worker_ok);
    /* Take the queued values with sigtimedwait, check them, then queue them again. */
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN + 2);
    struct timespec zero = {0, 0};
    for (int i = 0; i < 3; i++) {
        siginfo_t si;
        int got = sigtimedwait(&rt, &si, &zero);
        CF_EQ("queued SIGRTMIN+2", SIGRTMIN + 2, got);
        CF_EQ("its sigqueue value, in order", 100 + i, got > 0 ? si.si_value.sival_int : -1);
    }
    siginfo_t si;
    CF_EQ("no fourth SIGRTMIN+2", -1, sigtimedwait(&rt, &si, &zero));
    union sigval v;
    for (int i = 0; i < 3; i++) {
        v.sival_int = 100 + i;
        sigqueue(getpid(), SIGRTMIN + 2, v);
    }
}

CF_MAIN
