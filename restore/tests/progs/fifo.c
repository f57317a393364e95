/* Two processes talk over a FIFO (named pipe) in DIR: the child writes N text records faster
 * than the parent reads them, so unread bytes wait in the FIFO; the parent prints counts and
 * a checksum: usage fifo DIR N. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    printf("start\n");
    fflush(stdout);
    if (argc < 3) return 2;
    int n = atoi(argv[2]);
    char path[4096];
    snprintf(path, sizeof path, "%s/fifo", argv[1]);
    unlink(path);
    if (mkfifo(path, 0600) < 0) return 3;
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) {
        int w = open(path, O_WRONLY);
        if (w < 0) _exit(20);
        for (int i = 0; i < n; i++) {
            char b[64];
            int len = snprintf(b, sizeof b, "record %d\n", i);
            if (write(w, b, len) != len) _exit(21);
            usleep(1500);
        }
        _exit(0);
    }
    int r = open(path, O_RDONLY);
    if (r < 0) return 5;
    unsigned long bytes = 0, sum = 0, lines = 0;
    char b[7];
    ssize_t k;
    while ((k = read(r, b, sizeof b)) > 0) {
        bytes += k;
        for (int j = 0; j < k; j++) {
            sum = sum * 131 + (unsigned char)b[j];
            lines += b[j] == '\n';
        }
        usleep(2000);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) return 6;
    printf("fifo: %lu lines, %lu bytes, sum %lu\n", lines, bytes, sum);
    unlink(path);
    return 0;
}
