/* A parent and 3 children share a MAP_SHARED|MAP_ANONYMOUS counter and a pipe: each child
 * adds 1 to the counter STEPS times (with short sleeps) and writes one fixed-size record
 * per step to the pipe; the parent reads every record until EOF, reaps the children and
 * prints per-child record counts and sums and the final counter: usage shmcount STEPS. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
struct rec { int child, step; };
int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 100;
    long *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counter == MAP_FAILED) return 2;
    int p[2];
    if (pipe(p) < 0) return 3;
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] < 0) return 4;
        if (kids[k] == 0) {
            close(p[0]);
            for (int i = 0; i < steps; i++) {
                __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
                struct rec r = {k, i};
                if (write(p[1], &r, sizeof r) != sizeof r) _exit(20);
                usleep(2000 + 1000 * k);
            }
            _exit(0);
        }
    }
    close(p[1]);
    long n[3] = {0}, sum[3] = {0};
    struct rec r;
    /* Read slowly so that records wait in the pipe. */
    while (read(p[0], &r, sizeof r) == sizeof r) {
        if (r.child < 0 || r.child > 2) return 5;
        n[r.child]++;
        sum[r.child] += r.step;
        usleep(500);
    }
    for (int k = 0; k < 3; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st)) return 6;
        printf("child %d: %ld records, sum %ld\n", k, n[k], sum[k]);
    }
    printf("counter %ld\n", *counter);
    return 0;
}
