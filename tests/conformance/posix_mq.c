/* POSIX message queues (mq_open).
 * kind: POSIX IPC
 * checks: mq_getattr (mq_maxmsg, mq_msgsize, mq_curmsgs, O_NONBLOCK of each descriptor); the queued messages with their priorities, in order; a second descriptor opened read-only
 * root: restored
 * build: -lrt
 */
#include "conformance.h"
#include <fcntl.h>
#include <mqueue.h>

static mqd_t q, ro;
static char name[64];
static const unsigned prio[4] = {1, 9, 1, 4};
static const char *text[4] = {"first low", "high", "second low", "middle"};
/* mq_receive order: highest priority first, FIFO within a priority. */
static const int order[4] = {1, 3, 0, 2};

static void cleanup(void) { mq_unlink(name); }

static void setup(void) {
    snprintf(name, sizeof name, "/cf_mq_%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = 5, .mq_msgsize = 64};
    CF_TRY(q = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600, &a));
    atexit(cleanup);
    CF_TRY(ro = mq_open(name, O_RDONLY));
    for (int i = 0; i < 4; i++) CF_TRY(mq_send(q, text[i], strlen(text[i]), prio[i]));
}

static void check(void) {
    struct mq_attr a;
    CF_EQ("mq_getattr", 0, mq_getattr(q, &a));
    CF_EQ("mq_maxmsg", 5, a.mq_maxmsg);
    CF_EQ("mq_msgsize", 64, a.mq_msgsize);
    CF_EQ("mq_curmsgs", 4, a.mq_curmsgs);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, a.mq_flags & O_NONBLOCK);
    CF_EQ("mq_getattr (read-only descriptor)", 0, mq_getattr(ro, &a));
    CF_EQ("read-only descriptor blocks", 0, a.mq_flags & O_NONBLOCK);
    CF_EQ("access mode of the read-only descriptor", O_RDONLY, fcntl(ro, F_GETFL) & O_ACCMODE);
    char buf[64];
    unsigned p;
    for (int k = 0; k < 4; k++) {
        int i = order[k];
        memset(buf, 0, sizeof buf);
        ssize_t n = mq_receive(q, buf, sizeof buf, &p);
        CF_EQ("message length", (long)strlen(text[i]), n);
        CF_EQ("message priority", prio[i], p);
        CF_STREQ("message text", text[i], buf);
    }
    CF_EQ("queue empty: mq_receive fails", -1, mq_receive(q, buf, sizeof buf, &p));
    CF_EQ("queue empty: EAGAIN (O_NONBLOCK)", EAGAIN, errno);
    for (int i = 0; i < 4; i++) mq_send(q, text[i], strlen(text[i]), prio[i]);
}
CF_MAIN
