/* A one-dimensional Jacobi stencil split across the MPI ranks: every step each rank swaps
 * its halo cells with both neighbours (non-blocking MPI_Isend/MPI_Irecv), relaxes its part
 * of the rod and sleeps a little; every 10 steps the ranks sum the residual with
 * MPI_Allreduce and rank 0 prints it. Argument 1: steps (default 300); argument 2: cells
 * per rank (default 65536). Deterministic output for a given number of ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    int n = argc > 2 ? atoi(argv[2]) : 65536;
    double *u = calloc(n + 2, sizeof *u), *v = calloc(n + 2, sizeof *v);
    if (!u || !v)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (int i = 1; i <= n; i++)
        u[i] = (double)((rank * n + i) % 97) / 97.0;
    int left = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int right = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    if (rank == 0) {
        printf("jacobi on %d ranks, %d cells each, %d steps\n", size, n, steps);
        fflush(stdout);
    }
    for (int step = 1; step <= steps; step++) {
        MPI_Request req[4];
        MPI_Status st[4];
        MPI_Irecv(&u[0], 1, MPI_DOUBLE, left, 0, MPI_COMM_WORLD, &req[0]);
        MPI_Irecv(&u[n + 1], 1, MPI_DOUBLE, right, 1, MPI_COMM_WORLD, &req[1]);
        MPI_Isend(&u[1], 1, MPI_DOUBLE, left, 1, MPI_COMM_WORLD, &req[2]);
        MPI_Isend(&u[n], 1, MPI_DOUBLE, right, 0, MPI_COMM_WORLD, &req[3]);
        MPI_Waitall(4, req, st);
        if (left == MPI_PROC_NULL)
            u[0] = 1.0;
        if (right == MPI_PROC_NULL)
            u[n + 1] = 0.0;
        double local = 0.0;
        for (int i = 1; i <= n; i++) {
            v[i] = 0.5 * (u[i - 1] + u[i + 1]);
            local += (v[i] - u[i]) * (v[i] - u[i]);
        }
        double *t = u;
        u = v;
        v = t;
        if (step % 10 == 0) {
            double global = 0.0;
            MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            if (rank == 0) {
                printf("step %d residual %.12e\n", step, global);
                fflush(stdout);
            }
        }
        nap(10);
    }
    double mine = 0.0, all = 0.0;
    for (int i = 1; i <= n; i++)
        mine += u[i] * (double)i;
    MPI_Reduce(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("final moment %.12e\n", all);
        fflush(stdout);
    }
    free(u);
    free(v);
    MPI_Finalize();
    return 0;
}
