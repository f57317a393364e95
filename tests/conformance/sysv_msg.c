/* System V message queues: ids, keys, attributes and queued messages.
 * kind: System V IPC
 * checks: queue id and key (msgget finds it); a removed queue leaves its id unused; IPC_STAT mode, owner, msg_qbytes (lowered), msg_qnum, msg_cbytes; every message with its type, length (0 to 1000 bytes) and bytes, in order (msgrcv MSG_COPY); msgrcv by type takes the oldest message of that type; msgsnd works on the restored queue
 * root: restored
 */
#include "conformance.h"
#include <sys/ipc.h>
#include <sys/msg.h>

#define M 6
static const long types[M] = {1, 5, 2, 5, 7, 1};
static const int lens[M] = {10, 0, 1000, 33, 1, 200};
static int q, p, gone;
static key_t key;
static pid_t owner;
static struct {
    long mtype;
    char text[2048];
} msg;

static void cleanup(void) {
    if (getpid() != owner) return;
    msgctl(q, IPC_RMID, NULL);
    msgctl(p, IPC_RMID, NULL);
}

static void fill(int i) {
    msg.mtype = types[i];
    for (int k = 0; k < lens[i]; k++) msg.text[k] = (char)(i * 31 + k * 7);
}

static int same(int i, ssize_t n) {
    if (n != lens[i] || msg.mtype != types[i]) return 0;
    for (int k = 0; k < lens[i]; k++)
        if (msg.text[k] != (char)(i * 31 + k * 7)) return 0;
    return 1;
}

static void setup(void) {
    owner = getpid();
    key = 0x5e3b0000 | (owner & 0xffff);
    CF_TRY(gone = msgget(IPC_PRIVATE, 0600));
    CF_TRY(q = msgget(key, IPC_CREAT | IPC_EXCL | 0620 | 0400));
    CF_TRY(p = msgget(IPC_PRIVATE, 0600));
    CF_TRY(msgctl(gone, IPC_RMID, NULL));
    atexit(cleanup);
    struct msqid_ds ds;
    CF_TRY(msgctl(q, IPC_STAT, &ds));
    ds.msg_qbytes = 4000;
    CF_TRY(msgctl(q, IPC_SET, &ds));
    for (int i = 0; i < M; i++) {
        fill(i);
        CF_TRY(msgsnd(q, &msg, lens[i], IPC_NOWAIT));
        CF_TRY(msgsnd(p, &msg, lens[i], IPC_NOWAIT));
    }
}

static int round_no;
static void check(void) {
    round_no++;
    struct msqid_ds ds;
    CF_EQ("msgget finds the key's queue", q, msgget(key, 0));
    CF_EQ("IPC_STAT", 0, msgctl(q, IPC_STAT, &ds));
    CF_EQ("mode", 0620 | 0400, ds.msg_perm.mode & 0777);
    CF_EQ("owner uid", getuid(), ds.msg_perm.uid);
    CF_EQ("owner gid", getgid(), ds.msg_perm.gid);
    CF_EQ("msg_qbytes", 4000, ds.msg_qbytes);
    CF_EQ("msg_qnum", M, ds.msg_qnum);
    long total = 0;
    for (int i = 0; i < M; i++) total += lens[i];
    CF_EQ("msg_cbytes", total, ds.__msg_cbytes);
    for (int i = 0; i < M; i++) {
        memset(&msg, 0, sizeof msg);
        ssize_t n = msgrcv(q, &msg, sizeof msg.text, i, MSG_COPY | IPC_NOWAIT);
        if (!same(i, n))
            cf_fail("message %d: expected type %ld, %d bytes; got type %ld, %zd bytes (%s)", i,
                    types[i], lens[i], msg.mtype, n, n < 0 ? strerror(errno) : "or other bytes");
    }
    /* The second queue: each round takes the oldest message of type 5, sends it back (it
     * goes to the end), and checks the queue's order. */
    memset(&msg, 0, sizeof msg);
    ssize_t n = msgrcv(p, &msg, sizeof msg.text, 5, IPC_NOWAIT);
    int expect = round_no == 1 ? 1 : 3;
    if (!same(expect, n)) cf_fail("msgrcv type 5: not message %d (got %zd bytes)", expect, n);
    CF_EQ("msgsnd on the restored queue", 0, msgsnd(p, &msg, n < 0 ? 0 : n, IPC_NOWAIT));
    CF_EQ("private queue IPC_STAT", 0, msgctl(p, IPC_STAT, &ds));
    CF_EQ("private queue msg_qnum", M, ds.msg_qnum);
    CF_EQ("private queue mode", 0600, ds.msg_perm.mode & 0777);
    CF_EQ("the removed queue's id is unused", -1, msgctl(gone, IPC_STAT, &ds));
}
CF_MAIN
