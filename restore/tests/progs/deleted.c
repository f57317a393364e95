/* Writes data to a file, unlinks it while keeping it open, and keeps reading it back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.scratch", argv[1]);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 2;
    for (int i = 0; i < 1000; i++) dprintf(fd, "line %04d\n", i);
    unlink(tmp);
    for (int i = 0; i < 150; i++) {
        char buf[11] = {0};
        if (pread(fd, buf, 10, (off_t)((i * 37) % 1000) * 10) != 10) return 5;
        fprintf(f, "%d %s", i, buf);
        fflush(f);
        usleep(2000);
    }
    fprintf(f, "done\n");
    return fclose(f) == 0 ? 0 : 3;
}
