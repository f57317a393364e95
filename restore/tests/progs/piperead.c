/* Echoes stdin lines to argv[1] with a line number, blocking in read(2) between lines. */
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    char buf[256];
    int n = 0, len = 0;
    for (;;) {
        ssize_t r = read(0, buf + len, 1);
        if (r < 0) { fprintf(f, "error\n"); return 1; }
        if (r == 0) break;
        if (buf[len] == '\n' || len == 254) {
            buf[len] = 0;
            fprintf(f, "%d %s\n", ++n, buf);
            fflush(f);
            len = 0;
        } else len++;
    }
    fprintf(f, "eof\n");
    return fclose(f) == 0 ? 0 : 3;
}
