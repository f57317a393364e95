/* A long computation for the Slurm tests: STEPS steps of about 1 s each (default 75), each
 * printing a line that depends on all the state computed before it, so a resume from the wrong
 * point, a lost step or a repeated step changes the output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 75;
    /* The native reference run skips the sleeps: they change the timing, not the output. */
    int nosleep = getenv("SLURM_STEPS_NOSLEEP") != NULL;
    static uint64_t grid[1 << 16];
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < (1 << 16); i++)
        grid[i] = (uint64_t)i * 2654435761ULL;
    for (int s = 1; s <= steps; s++) {
        for (int i = 0; i < (1 << 16); i++) {
            grid[i] = grid[i] * 6364136223846793005ULL + (uint64_t)s;
            h = (h ^ grid[i]) * 1099511628211ULL;
        }
        printf("step %d of %d: %016llx\n", s, steps, (unsigned long long)h);
        fflush(stdout);
        if (!nosleep) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    }
    printf("finished\n");
    return 0;
}
