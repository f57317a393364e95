/* Differential test program: the main thread is blocked reading a pipe that a second thread
 * fills slowly, so checkpoints land inside read(2). usage: pipe_reader MESSAGES */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fds[2];
static long messages;

static void *writer(void *arg) {
    (void)arg;
    char buf[64];
    for (long i = 0; i < messages; i++) {
        usleep(30000);
        int n = snprintf(buf, sizeof buf, "message %08ld\n", i);
        if (write(fds[1], buf, (size_t)n) != n) { perror("write"); exit(1); }
    }
    close(fds[1]);
    return NULL;
}

int main(int argc, char **argv) {
    messages = argc > 1 ? atol(argv[1]) : 60;
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    pthread_t t;
    if (pthread_create(&t, NULL, writer, NULL) != 0) { perror("pthread_create"); return 1; }
    char buf[256];
    long total = 0, eintr = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) { eintr++; continue; }
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        total += n;
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
    pthread_join(t, NULL);
    printf("done %ld bytes eintr=%ld\n", total, eintr);
    return 0;
}
