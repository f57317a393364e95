/* Writes 0..N-1 to the file argv[1], one per line, with short sleeps. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = argc > 2 ? atoi(argv[2]) : 300;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d %d\n", i, getpid());
        fflush(f);
        usleep(2000);
    }
    fprintf(f, "done\n");
    return fclose(f) == 0 ? 0 : 3;
}
