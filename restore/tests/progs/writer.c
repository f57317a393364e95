/* Appends to a log (O_APPEND) and to stdout, and keeps a counter in a state file that it
 * reads back and rewrites in place every step: usage writer LOG STATE|- N. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int n = atoi(argv[3]);
    int log = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) return 3;
    int state = -1;
    if (strcmp(argv[2], "-") != 0) {
        state = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (state < 0 || pwrite(state, "0000000000\n", 11, 0) != 11) return 4;
    }
    char buf[64];
    for (int i = 0; i < n; i++) {
        long v = i;
        if (state >= 0) {
            if (pread(state, buf, 11, 0) != 11) return 5;
            buf[10] = 0;
            v = atol(buf) + 1;
            int k = snprintf(buf, sizeof buf, "%010ld\n", v);
            if (pwrite(state, buf, k, 0) != k) return 6;
        }
        int k = snprintf(buf, sizeof buf, "log %d %ld\n", i, v);
        if (write(log, buf, k) != k) return 7;
        k = snprintf(buf, sizeof buf, "out %d\n", i);
        if (write(1, buf, k) != k) return 8;
        usleep(3000);
    }
    return write(1, "done\n", 5) == 5 ? 0 : 9;
}
