/* Threads that wait in a syscall with a timeout, over and over, so that a checkpoint finds
 * each of them in the middle of a wait. Included by the *_timeout.c and nanosleep.c programs.
 *
 * Each waiter's call must time out after WAIT_NS (nothing ever wakes it otherwise). Every
 * wait is timed on CLOCK_MONOTONIC (which a restored job's time namespace continues): it must
 * never end early or with EINTR, and may last at most `extra_ns` beyond WAIT_NS — a small
 * slack for calls that resume with what was left of their timeout, one whole timeout more
 * for those that start their timeout again after a restart (see docs/capture-restore.md,
 * "Syscall restart"). setup() waits LEAD_NS before READY and check() LEAD_NS before it
 * returns, so that the runner's checkpoints find every waiter well into a wait. */
#ifndef CAIRN_WAITS_H
#define CAIRN_WAITS_H

#include <pthread.h>
#include <time.h>

#define WAIT_NS 4000000000LL
#define LEAD_NS 1500000000LL
/* A restore takes some time on the job's clock: what a resumed wait may overshoot. */
#define SLACK_NS 900000000LL
#define MAX_WAITERS 8

/* One kind of wait: `wait` makes one call that should time out after WAIT_NS and returns
 * 0 when it timed out, else a description of what happened instead. */
struct waiter {
    const char *name;
    const char *(*wait)(void);
    long long extra_ns;
    volatile int done, early, failed;
    volatile long long worst;
    const char *volatile why;
};

static struct waiter *waiters[MAX_WAITERS];
static int n_waiters;

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    for (;;) {
        long long t0 = mono_ns();
        const char *why = w->wait();
        long long over = mono_ns() - t0 - WAIT_NS;
        if (why) {
            w->why = why;
            w->failed++;
        } else if (over < -2000000LL) {
            w->early++;
        }
        if (over > w->worst) w->worst = over;
        w->done++;
    }
    return NULL;
}

static void lead(void) {
    struct timespec d = {LEAD_NS / 1000000000LL, LEAD_NS % 1000000000LL};
    while (nanosleep(&d, &d) != 0) {
    }
}

/* Starts a thread for each waiter (all signals blocked in it), then waits LEAD_NS. */
static void start_waiters(void) {
    sigset_t all;
    sigfillset(&all);
    sigset_t old;
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_waiters; i++) {
        pthread_t th;
        CF_TRY(pthread_create(&th, NULL, waiter_main, waiters[i]) ? -1 : 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    lead();
}

/* Waits until every waiter has ended the wait it was in, checks every wait so far, then
 * waits LEAD_NS. */
static void check_waiters(void) {
    int before[MAX_WAITERS];
    for (int i = 0; i < n_waiters; i++) before[i] = waiters[i]->done;
    long long give_up = mono_ns() + 3 * WAIT_NS;
    for (int i = 0; i < n_waiters; i++) {
        struct waiter *w = waiters[i];
        while (w->done == before[i] && mono_ns() < give_up) usleep(10000);
        if (w->done == before[i]) cf_fail("%s: the wait did not end", w->name);
        if (w->failed) cf_fail("%s: %d waits failed (%s)", w->name, w->failed, w->why);
        if (w->early) cf_fail("%s: %d waits ended early", w->name, w->early);
        if (w->worst > w->extra_ns)
            cf_fail("%s: a wait lasted %lld ms more than its timeout (at most %lld allowed)",
                    w->name, w->worst / 1000000, w->extra_ns / 1000000);
    }
    lead();
}

#endif
