/* A parent and 3 children share System V shared memory: segment A (IPC_PRIVATE, not a page
 * multiple, attached before fork and marked for removal with IPC_RMID while attached) holds
 * a counter and per-child data; segment B (with a key) is attached by each child itself after
 * shmget(key); segment C is only written once and detached, and read back at the end. The
 * program keeps the ids in memory and checks key lookup, the removal mark and the removal
 * after the last detach: usage sysvshm STEPS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    printf("start\n");
    fflush(stdout);
    int steps = argc > 1 ? atoi(argv[1]) : 100;
    key_t key = 0x5ca10000 + (getpid() & 0xffff);
    int a = shmget(IPC_PRIVATE, 3 * 4096 + 100, IPC_CREAT | 0600);
    int b = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0640);
    int c = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (a < 0 || b < 0 || c < 0) return 2;
    long *pa = shmat(a, NULL, 0);
    char *pc = shmat(c, NULL, 0);
    if (pa == (void *)-1 || pc == (void *)-1) return 3;
    strcpy(pc, "segment c survives unattached");
    shmdt(pc);
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] < 0) return 4;
        if (kids[k] == 0) {
            int bb = shmget(key, 0, 0);
            if (bb != b) _exit(20);
            unsigned char *pb = shmat(bb, NULL, 0);
            if (pb == (void *)-1) _exit(21);
            for (int i = 0; i < steps; i++) {
                __atomic_add_fetch(&pa[0], 1, __ATOMIC_SEQ_CST);
                pa[1 + k * 500 + i % 500] += i;
                pb[k * 1000 + i % 1000] += (unsigned char)(i + k);
                usleep(2000 + 1000 * k);
            }
            if (shmget(key, 0, 0) != b) _exit(22);
            shmdt(pb);
            _exit(0);
        }
    }
    usleep(1000);
    if (shmctl(a, IPC_RMID, NULL) < 0) return 5;
    for (int k = 0; k < 3; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st)) return 6;
        printf("child %d: exit %d\n", k, WEXITSTATUS(st));
    }
    long sums[3] = {0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 500; i++) sums[k] += pa[1 + k * 500 + i];
    printf("counter %ld sums %ld %ld %ld\n", pa[0], sums[0], sums[1], sums[2]);
    unsigned char *pb = shmat(b, NULL, SHM_RDONLY);
    unsigned long bs = 0;
    for (int i = 0; i < 4096; i++) bs = bs * 31 + pb[i];
    printf("segment b checksum %lu, key finds it: %d\n", bs, shmget(key, 0, 0) == b);
    struct shmid_ds ds;
    printf("segment a marked for removal: %d\n",
           shmctl(a, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST) != 0);
    shmdt(pa);
    printf("segment a gone after the last detach: %d\n",
           shmctl(a, IPC_STAT, &ds) < 0 && errno == EINVAL);
    pc = shmat(c, NULL, SHM_RDONLY);
    printf("%s\n", pc);
    shmctl(b, IPC_RMID, NULL);
    shmctl(c, IPC_RMID, NULL);
    return 0;
}
