/* Differential test program: counts to N, printing each step to stdout and to its own file.
 * usage: counter N FILE [DELAY_US] */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: counter N FILE [DELAY_US]\n"); return 2; }
    long n = atol(argv[1]);
    long delay = argc > 3 ? atol(argv[3]) : 2000;
    FILE *f = fopen(argv[2], "w");
    if (!f) { perror("fopen"); return 1; }
    unsigned long long acc = 1469598103934665603ULL;
    for (long i = 0; i < n; i++) {
        acc = (acc ^ (unsigned long long)i) * 1099511628211ULL;
        printf("%ld %llu\n", i, acc);
        fflush(stdout);
        fprintf(f, "step %ld acc %016llx\n", i, acc);
        fflush(f);
        usleep(delay);
    }
    fclose(f);
    printf("done %llu\n", acc);
    return 0;
}
