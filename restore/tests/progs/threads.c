/* 4 threads take turns (mutex + condition variable) appending "turn thread" lines to argv[1]. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn = 0, total;
static FILE *out;
static void *worker(void *arg) {
    long id = (long)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (turn < total && turn % 4 != id) pthread_cond_wait(&cv, &mu);
        if (turn >= total) { pthread_mutex_unlock(&mu); return NULL; }
        fprintf(out, "%d %ld\n", turn, id);
        fflush(out);
        turn++;
        usleep(1000);
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}
int main(int argc, char **argv) {
    total = argc > 2 ? atoi(argv[2]) : 400;
    out = fopen(argv[1], "w");
    if (!out) return 2;
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    fprintf(out, "done\n");
    return fclose(out) == 0 ? 0 : 3;
}
