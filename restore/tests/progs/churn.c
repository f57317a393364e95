/* Creates and joins short-lived threads all the time, so checkpoints hit threads being born
 * and dying. Prints progress every 50 threads. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *noop(void *a) { usleep(500); return a; }
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    for (long i = 0; i < 1500; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, noop, (void *)i) != 0) return 4;
        pthread_join(t, &r);
        if ((long)r != i) return 5;
        if (i % 50 == 0) { fprintf(f, "%ld\n", i); fflush(f); }
    }
    fprintf(f, "done\n");
    return fclose(f) == 0 ? 0 : 3;
}
