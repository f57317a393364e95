/* System V semaphore sets: ids, keys, values, owners and waiters.
 * kind: System V IPC
 * checks: set id and key (semget finds it); a removed set leaves its id unused; IPC_STAT mode, owner, number of semaphores; GETALL values (0 to 32767, the largest); GETPID of each semaphore (a semaphore nobody changed reads 0, one changed by a child reads the child's pid); GETNCNT of a child blocked in semtimedop (a stop fails it with EINTR: cairn repeats it); semop works on the restored set and wakes the child
 * root: restored
 */
#include "conformance.h"
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

#define N 5
static const unsigned short want[N] = {3, 0, 7, 32767, 1};
static int a, b, gone;
static key_t key;
static pid_t owner, child;
static int done[2];

static void cleanup(void) {
    if (getpid() != owner) return;
    semctl(a, 0, IPC_RMID);
    semctl(b, 0, IPC_RMID);
}

static void setup(void) {
    owner = getpid();
    key = 0x5e3a0000 | (owner & 0xffff);
    CF_TRY(gone = semget(IPC_PRIVATE, 2, 0600));
    CF_TRY(a = semget(key, N, IPC_CREAT | IPC_EXCL | 0640));
    CF_TRY(b = semget(IPC_PRIVATE, 3, 0600));
    CF_TRY(semctl(gone, 0, IPC_RMID));
    atexit(cleanup);
    union semun u = {.array = (unsigned short *)want};
    CF_TRY(semctl(a, 0, SETALL, u));
    CF_TRY(pipe(done));
    CF_TRY(child = fork());
    if (child == 0) {
        /* Changes semaphore 1 of a (so GETPID names this child), then waits for semaphore 2
         * of b, which the parent raises after the last check. */
        struct sembuf up = {1, 2, 0}, down = {1, -2, 0};
        if (semop(a, &up, 1) || semop(a, &down, 1)) _exit(3);
        struct sembuf wait = {2, -1, 0};
        struct timespec t = {300, 0};
        while (semtimedop(b, &wait, 1, &t) != 0)
            if (errno != EINTR) _exit(4);
            else {
                printf("FAIL: child semop got EINTR\n");
                fflush(stdout);
            }
        char c = 'k';
        if (write(done[1], &c, 1) != 1) _exit(5);
        _exit(0);
    }
    /* Wait until the child changed a and waits on b. */
    for (int i = 0; i < 500 && semctl(b, 2, GETNCNT) != 1; i++) usleep(10000);
    CF_TRY(semctl(b, 2, GETNCNT) == 1 ? 0 : -1);
}

static int round_no;
static void check(void) {
    round_no++;
    struct semid_ds ds;
    union semun u = {.buf = &ds};
    CF_EQ("semget finds the key's set", a, semget(key, 0, 0));
    CF_EQ("IPC_STAT", 0, semctl(a, 0, IPC_STAT, u));
    CF_EQ("mode", 0640, ds.sem_perm.mode & 0777);
    CF_EQ("owner uid", getuid(), ds.sem_perm.uid);
    CF_EQ("owner gid", getgid(), ds.sem_perm.gid);
    CF_EQ("number of semaphores", N, ds.sem_nsems);
    unsigned short got[N];
    u.array = got;
    CF_EQ("GETALL", 0, semctl(a, 0, GETALL, u));
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof what, "value of semaphore %d", i);
        CF_EQ(what, want[i], got[i]);
        snprintf(what, sizeof what, "GETPID of semaphore %d", i);
        CF_EQ(what, i == 1 ? child : owner, semctl(a, i, GETPID));
    }
    CF_EQ("IPC_STAT of the private set", 0, semctl(b, 0, IPC_STAT, (union semun){.buf = &ds}));
    CF_EQ("private set: mode", 0600, ds.sem_perm.mode & 0777);
    CF_EQ("private set: number of semaphores", 3, ds.sem_nsems);
    for (int i = 0; i < 3; i++) {
        CF_EQ("private set: value", 0, semctl(b, i, GETVAL));
        CF_EQ("private set: GETPID of a semaphore nobody changed", 0, semctl(b, i, GETPID));
    }
    int n = -1;
    for (int i = 0; i < 200 && (n = semctl(b, 2, GETNCNT)) != 1; i++) usleep(10000);
    CF_EQ("GETNCNT (the child waits in semop)", 1, n);
    CF_EQ("the removed set's id is unused", -1, semctl(gone, 0, IPC_STAT, (union semun){.buf = &ds}));
    /* semop on the restored set: take 3 from semaphore 0 and give them back. */
    struct sembuf ops[2] = {{0, -3, IPC_NOWAIT}, {0, 3, IPC_NOWAIT}};
    CF_EQ("semop -3 on semaphore 0", 0, semop(a, &ops[0], 1));
    CF_EQ("semaphore 0 after -3", 0, semctl(a, 0, GETVAL));
    CF_EQ("semop +3 on semaphore 0", 0, semop(a, &ops[1], 1));
    if (round_no == CF_CHECKS) {
        struct sembuf post = {2, 1, 0};
        CF_EQ("semop waking the child", 0, semop(b, &post, 1));
        char c = 0;
        CF_EQ("the child woke up", 1, read(done[0], &c, 1));
        int st = -1;
        waitpid(child, &st, 0);
        CF_EQ("the child's exit status", 0, st);
    }
}
CF_MAIN
