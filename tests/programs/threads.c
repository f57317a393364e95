/* Differential test program: 4 threads take turns under one mutex and condition variable.
 * usage: threads STEPS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 4
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long turn = 0, steps = 0;
static unsigned long long shared_acc = 7;

static void *worker(void *arg) {
    long id = (long)arg;
    unsigned long long mine = (unsigned long long)id + 1;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (turn < steps && turn % NTHREADS != id)
            pthread_cond_wait(&turn_changed, &lock);
        if (turn >= steps) { pthread_mutex_unlock(&lock); break; }
        mine = mine * 6364136223846793005ULL + (unsigned long long)turn;
        shared_acc ^= mine;
        printf("turn %ld thread %ld acc %llu\n", turn, id, shared_acc);
        fflush(stdout);
        turn++;
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
        usleep(1000);
    }
    return (void *)mine;
}

int main(int argc, char **argv) {
    steps = argc > 1 ? atol(argv[1]) : 2000;
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) { perror("pthread_create"); return 1; }
    unsigned long long total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (unsigned long long)r;
    }
    printf("done %llu %llu\n", shared_acc, total);
    return 0;
}
