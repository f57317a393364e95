/* System V semaphore undo adjustments (semop with SEM_UNDO).
 * kind: System V IPC
 * checks: the semaphore's value after a SEM_UNDO operation; the adjustment is applied when the process that made it exits
 * root: refused: semaphore undo list
 */
#include "conformance.h"
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>

static int id;
static pid_t owner;
static void cleanup(void) {
    if (getpid() == owner) semctl(id, 0, IPC_RMID);
}

static void setup(void) {
    owner = getpid();
    CF_TRY(id = semget(IPC_PRIVATE, 1, 0600));
    atexit(cleanup);
    CF_TRY(semctl(id, 0, SETVAL, 10));
    struct sembuf op = {0, -4, SEM_UNDO};
    CF_TRY(semop(id, &op, 1));
}

static void check(void) {
    CF_EQ("value after the SEM_UNDO operation", 6, semctl(id, 0, GETVAL));
    /* A child makes its own adjustment; its exit undoes it. */
    pid_t c = fork();
    if (c == 0) {
        struct sembuf op = {0, -2, SEM_UNDO};
        _exit(semop(id, &op, 1) ? 1 : 0);
    }
    int st = -1;
    waitpid(c, &st, 0);
    CF_EQ("child's semop", 0, st);
    CF_EQ("value after the child's exit undid its adjustment", 6, semctl(id, 0, GETVAL));
}
CF_MAIN
