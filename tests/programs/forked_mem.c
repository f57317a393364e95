/* A parent that fills 32 MiB, forks 8 children sharing it copy-on-write (each changes one
 * page), and then, like them, checks its memory every 100 ms for STEPS steps. The parent prints
 * each step's checksum and, at the end, every child's verdict. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIDS 8
#define LEN (32 << 20)
#define PG 4096

static unsigned char *array;

static unsigned long sum(void) {
    unsigned long s = 0;
    for (size_t i = 0; i < LEN; i += 64) s = s * 31 + array[i];
    return s;
}

static void nap(void) {
    struct timespec t = {0, 100 * 1000 * 1000};
    while (nanosleep(&t, &t) != 0) {}
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 60;
    setvbuf(stdout, NULL, _IOLBF, 0);
    array = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (array == MAP_FAILED) return 2;
    madvise(array, LEN, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < LEN; i++) array[i] = (unsigned char)(i * 13 + i / PG);
    unsigned long parent_sum = sum();
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        pid_t c = fork();
        if (c < 0) return 2;
        if (c == 0) {
            memset(array + (size_t)(k + 1) * 101 * PG, k + 1, PG);
            unsigned long mine = sum();
            for (int s = 0; s < steps; s++) {
                nap();
                if (sum() != mine) _exit(1);
            }
            _exit(0);
        }
        kids[k] = c;
    }
    printf("forked %d children\n", KIDS);
    for (int s = 0; s < steps; s++) {
        nap();
        unsigned long now = sum();
        printf("step %d %s\n", s, now == parent_sum ? "same" : "CHANGED");
    }
    for (int k = 0; k < KIDS; k++) {
        int st = 0;
        waitpid(kids[k], &st, 0);
        printf("child %d: %s\n", k + 1, WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "memory changed");
    }
    return 0;
}
