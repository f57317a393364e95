/* A POSIX message queue unlinked while open, shared by two processes.
 * kind: POSIX IPC
 * checks: the unlinked queue keeps its attributes and messages (with priorities) while its name opens the queue created under it afterwards, one description shared by parent and child (O_NONBLOCK set by one seen by the other)
 * root: restored
 * build: -lrt
 */
#include "conformance.h"
#include <fcntl.h>
#include <mqueue.h>
#include <sys/wait.h>

static mqd_t q, q2;
static char name[64];
static pid_t c;
static int life[2], rep[2];
static char x0;

static void cleanup(void) { mq_unlink(name); }

/* The child checks the shared description after each restart when the parent asks. */
static void child(void) {
    char x;
    close(life[1]); /* EOF once the first process ends: the child ends with it */
    while (read(life[0], &x, 1) == 1) {
        struct mq_attr a;
        char r = 'n';
        if (mq_getattr(q, &a) == 0 && (a.mq_flags & O_NONBLOCK) && a.mq_curmsgs == 2) r = 'y';
        write(rep[1], &r, 1);
    }
    _exit(0);
}

static void setup(void) {
    snprintf(name, sizeof name, "/cf_mqu_%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = 3, .mq_msgsize = 16};
    CF_TRY(q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0640, &a));
    CF_TRY(mq_send(q, "kept", 4, 2));
    CF_TRY(mq_send(q, "also", 4, 7));
    CF_TRY(mq_unlink(name));
    atexit(cleanup);
    struct mq_attr b = {.mq_maxmsg = 2, .mq_msgsize = 8};
    CF_TRY(q2 = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &b));
    CF_TRY(mq_send(q2, "new", 3, 0));
    CF_TRY(pipe(life));
    CF_TRY(pipe(rep));
    c = fork();
    if (c == 0) child();
    struct mq_attr nb = {.mq_flags = O_NONBLOCK};
    CF_TRY(mq_setattr(q, &nb, NULL));
    (void)x0;
}

static void check(void) {
    struct mq_attr a;
    CF_EQ("mq_getattr", 0, mq_getattr(q, &a));
    CF_EQ("mq_maxmsg", 3, a.mq_maxmsg);
    CF_EQ("mq_msgsize", 16, a.mq_msgsize);
    CF_EQ("mq_curmsgs", 2, a.mq_curmsgs);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, a.mq_flags & O_NONBLOCK);
    CF_EQ("queue under the name now", 0, mq_getattr(q2, &a));
    CF_EQ("its mq_maxmsg", 2, a.mq_maxmsg);
    CF_EQ("its mq_curmsgs", 1, a.mq_curmsgs);
    mqd_t again = mq_open(name, O_RDONLY);
    CF_EQ("the name opens the newer queue", 1, again >= 0);
    if (again >= 0) {
        CF_EQ("mq_getattr of the name", 0, mq_getattr(again, &a));
        CF_EQ("mq_maxmsg of the name", 2, a.mq_maxmsg);
        mq_close(again);
    }
    char r = 0;
    CF_TRY(write(life[1], "?", 1));
    CF_EQ("child's report", 1, read(rep[0], &r, 1));
    CF_EQ("child sees the shared description non-blocking with both messages", 'y', r);
    char buf[16];
    unsigned p;
    ssize_t n = mq_receive(q, buf, sizeof buf, &p);
    CF_EQ("first message length", 4, n);
    CF_EQ("first message priority", 7, p);
    n = mq_receive(q, buf, sizeof buf, &p);
    CF_EQ("second message priority", 2, p);
    CF_TRY(mq_send(q, "kept", 4, 2));
    CF_TRY(mq_send(q, "also", 4, 7));
}
CF_MAIN
