/* Worker threads for conformance programs that check per-thread state: each worker runs
 * its own setup, then waits in read(2) on a pipe; cf_ask(i) makes worker i run its check
 * (which may call cf_fail) and waits until it is done. Include after conformance.h. */
#ifndef CAIRN_CF_THREADS_H
#define CAIRN_CF_THREADS_H

#include <pthread.h>

#define CF_MAX_THREADS 8

struct cf_worker {
    int req[2], done[2];
    int index;
    pid_t tid;
    pthread_t th;
    void (*setup)(int index);
    void (*check)(int index);
};

static struct cf_worker cf_workers[CF_MAX_THREADS];

static void *cf_worker_main(void *arg) {
    struct cf_worker *w = arg;
    w->tid = gettid();
    w->setup(w->index);
    char c = 1;
    if (write(w->done[1], &c, 1) != 1) exit(2);
    for (;;) {
        ssize_t n = read(w->req[0], &c, 1);
        if (n < 0 && errno == EINTR) {
            cf_fail("worker %d: read interrupted (EINTR)", w->index);
            continue;
        }
        if (n != 1) exit(2);
        w->check(w->index);
        if (write(w->done[1], &c, 1) != 1) exit(2);
    }
    return NULL;
}

/* Starts worker `index`, which runs setup(index) in the new thread before this returns. */
static void cf_start(int index, void (*setup)(int), void (*check)(int)) {
    struct cf_worker *w = &cf_workers[index];
    w->index = index;
    w->setup = setup;
    w->check = check;
    CF_TRY(pipe(w->req));
    CF_TRY(pipe(w->done));
    if (pthread_create(&w->th, NULL, cf_worker_main, w) != 0) exit(2);
    char c;
    if (read(w->done[0], &c, 1) != 1) exit(2);
}

/* Runs worker `index`'s check in its own thread and waits for it. */
static void cf_ask(int index) {
    struct cf_worker *w = &cf_workers[index];
    char c = 1;
    if (write(w->req[1], &c, 1) != 1) exit(2);
    while (read(w->done[0], &c, 1) != 1) {
        if (errno != EINTR) exit(2);
    }
}

#endif
