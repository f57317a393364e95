/* A token travels around a ring of MPI ranks STEPS times (argument 1, default 200); every
 * rank adds its rank and the step to it, sleeps a little (so a checkpoint finds the job
 * in the middle of its work) and passes it on. Rank 0 prints one line per lap: the lap,
 * the token, and a checksum of a buffer every rank exchanges with both neighbours
 * (MPI_Sendrecv, 64 KiB: above the eager limit of the shared-memory and TCP transports).
 * Deterministic output, so a run under cairn can be compared with a native one. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORDS (64 * 1024 / 8)

static void nap(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    static unsigned long out[WORDS], in[WORDS];
    unsigned long token = 1, sum = 0;
    if (rank == 0) {
        printf("ring of %d ranks, %d laps\n", size, steps);
        fflush(stdout);
    }
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < WORDS; i++)
            out[i] = (unsigned long)rank * 1000003UL + (unsigned long)step * 7919UL + i;
        MPI_Sendrecv(out, WORDS, MPI_UNSIGNED_LONG, next, 1, in, WORDS, MPI_UNSIGNED_LONG,
                     prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int i = 0; i < WORDS; i++)
            sum = sum * 31 + in[i];
        if (rank == 0) {
            MPI_Send(&token, 1, MPI_UNSIGNED_LONG, next, 0, MPI_COMM_WORLD);
            MPI_Recv(&token, 1, MPI_UNSIGNED_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(&token, 1, MPI_UNSIGNED_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            token = token * 6364136223846793005UL + (unsigned long)rank + (unsigned long)step;
            MPI_Send(&token, 1, MPI_UNSIGNED_LONG, next, 0, MPI_COMM_WORLD);
        }
        unsigned long all = 0;
        MPI_Reduce(&sum, &all, 1, MPI_UNSIGNED_LONG, MPI_BXOR, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            printf("lap %d token %016lx sums %016lx\n", step, token, all);
            fflush(stdout);
        }
        nap(10);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        printf("done\n");
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
