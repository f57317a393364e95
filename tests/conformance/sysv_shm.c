/* System V shared memory: segments, their attributes and attachments.
 * kind: System V IPC
 * checks: segment id and key; IPC_STAT size, mode, owner, creator pid, number of attachments; contents; attached address; a segment marked for removal (IPC_RMID) while attached; a child attached to the same segment sees writes
 * root: restored
 */
#include "conformance.h"
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define SZ (1 << 20)
static int id, gone_id;
static key_t key;
static pid_t owner;
static void cleanup(void) {
    if (getpid() == owner) shmctl(id, IPC_RMID, NULL);
}
static unsigned char *mem, *gone;
static int ask[2], ans[2];

static void setup(void) {
    owner = getpid();
    key = 0x5eed0000 | (owner & 0xffff);
    CF_TRY(id = shmget(key, SZ, IPC_CREAT | IPC_EXCL | 0640));
    atexit(cleanup);
    mem = shmat(id, NULL, 0);
    CF_TRY(mem == (void *)-1 ? -1 : 0);
    for (int i = 0; i < SZ; i++) mem[i] = (unsigned char)(i * 13);
    CF_TRY(gone_id = shmget(IPC_PRIVATE, 65536, 0600));
    gone = shmat(gone_id, NULL, SHM_RDONLY);
    CF_TRY(gone == (void *)-1 ? -1 : 0);
    CF_TRY(shmctl(gone_id, IPC_RMID, NULL));
    CF_TRY(pipe(ask));
    CF_TRY(pipe(ans));
    pid_t c;
    CF_TRY(c = fork());
    if (c == 0) {
        char b;
        close(ask[1]); /* EOF once the first process ends: the child ends with it */
        while (read(ask[0], &b, 1) == 1) {
            mem[1000] = (unsigned char)b;
            if (write(ans[1], &b, 1) != 1) _exit(1);
        }
        _exit(0);
    }
}

static int round_no;
static void check(void) {
    struct shmid_ds ds;
    CF_EQ("shmget finds the key's segment", id, shmget(key, 0, 0));
    CF_EQ("IPC_STAT", 0, shmctl(id, IPC_STAT, &ds));
    CF_EQ("size", SZ, ds.shm_segsz);
    CF_EQ("mode", 0640, ds.shm_perm.mode & 0777);
    CF_EQ("owner uid", getuid(), ds.shm_perm.uid);
    CF_EQ("creator pid", getpid(), ds.shm_cpid);
    CF_EQ("attachments (this process and its child)", 2, ds.shm_nattch);
    int bad = 0;
    for (int i = 0; i < SZ; i++) if (i != 1000) bad += mem[i] != (unsigned char)(i * 13);
    CF_EQ("contents (bytes wrong)", 0, bad);
    CF_EQ("removed segment still attached, stat by id", 0, shmctl(gone_id, IPC_STAT, &ds));
    CF_EQ("removed segment marked SHM_DEST", SHM_DEST, ds.shm_perm.mode & SHM_DEST);
    char b = (char)(10 + round_no++);
    CF_EQ("child asked", 1, write(ask[1], &b, 1));
    CF_EQ("child answered", 1, read(ans[0], &b, 1));
    CF_EQ("the child's write is seen", 10 + round_no - 1, mem[1000]);
}

CF_MAIN
