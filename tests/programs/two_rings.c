/* Holds two io_uring instances (which cairn refuses) at descriptors 7 and 9, then counts
 * to N, one line every 50 ms: a checkpoint must be refused naming both descriptors at
 * once, and the program must run on to the end. usage: two_rings N */
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ring_at(int want) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(SYS_io_uring_setup, 4, &p);
    if (fd < 0) { perror("io_uring_setup"); exit(1); }
    if (dup2(fd, want) < 0) { perror("dup2"); exit(1); }
    close(fd);
    return want;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    ring_at(7);
    ring_at(9);
    printf("ready\n");
    fflush(stdout);
    for (long i = 0; i < n; i++) {
        printf("%ld\n", i);
        fflush(stdout);
        usleep(50000);
    }
    printf("done\n");
    return 0;
}
