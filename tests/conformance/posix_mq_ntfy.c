/* A POSIX message queue with a notification registered (mq_notify).
 * kind: POSIX IPC
 * checks: the registration (a second mq_notify fails with EBUSY), the signal it sends when a message arrives on the empty queue
 * root: refused: notification registered (mq_notify)
 * build: -lrt
 */
#include "conformance.h"
#include <fcntl.h>
#include <mqueue.h>

static mqd_t q;
static char name[64];
static volatile sig_atomic_t got;

static void cleanup(void) { mq_unlink(name); }
static void on_rt(int s) { (void)s; got++; }

static void setup(void) {
    snprintf(name, sizeof name, "/cf_mqn_%d", (int)getpid());
    CF_TRY(q = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600, NULL));
    atexit(cleanup);
    signal(SIGRTMIN + 1, on_rt);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
    CF_TRY(mq_notify(q, &ev));
}

static void check(void) {
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
    CF_EQ("a second registration fails", -1, mq_notify(q, &ev));
    CF_EQ("with EBUSY (the process's own registration)", EBUSY, errno);
    int before = got;
    CF_TRY(mq_send(q, "x", 1, 0));
    for (int i = 0; i < 100 && got == before; i++) usleep(10000);
    CF_EQ("notification signal", before + 1, got);
    char buf[8192];
    mq_receive(q, buf, sizeof buf, NULL);
    CF_TRY(mq_notify(q, &ev));
}
CF_MAIN
