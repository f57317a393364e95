/* Threads: identities, thread-local storage, robust futex lists and threads blocked on locks.
 * kind: threads
 * checks: number of threads; each thread's tid (gettid) and TLS value; get_robust_list head; set_tid_address clearing on exit (pthread_join works); threads blocked on a mutex and a condition variable wake as before
 * root: restored
 */
#include "conformance.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <dirent.h>

#define N 4
static __thread long tls = 0;
static pthread_t th[N];
static int tids[N];
static long tls_seen[N];
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int round_wanted, answered;
static void *robust_head[N];

static void *run(void *arg) {
    int i = (int)(long)arg;
    tls = 1000 + i;
    tids[i] = syscall(SYS_gettid);
    size_t len;
    syscall(SYS_get_robust_list, 0, &robust_head[i], &len);
    int seen = 0;
    if (i == 0) { /* this one blocks on a mutex the main thread holds between rounds */
        for (;;) {
            pthread_mutex_lock(&gate);
            pthread_mutex_unlock(&gate);
            pthread_mutex_lock(&mu);
            if (round_wanted > seen) {
                seen = round_wanted;
                tls_seen[i] = tls;
                tids[i] = syscall(SYS_gettid);
                answered++;
                pthread_cond_broadcast(&cv);
            }
            pthread_mutex_unlock(&mu);
            usleep(1000);
        }
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        while (round_wanted == seen) pthread_cond_wait(&cv, &mu);
        seen = round_wanted;
        tls_seen[i] = tls;
        tids[i] = syscall(SYS_gettid);
        answered++;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static int first_tids[N];
static pthread_t joinable;
static void *quick(void *a) { (void)a; return (void *)42; }

static void setup(void) {
    pthread_mutex_lock(&gate);
    for (long i = 0; i < N; i++) CF_TRY(-pthread_create(&th[i], NULL, run, (void *)i));
    for (int i = 0; i < N; i++) while (!tids[i] || !robust_head[i]) usleep(1000);
    memcpy(first_tids, tids, sizeof tids);
    tls = 77;
}

static void check(void) {
    CF_EQ("threads", N + 1, count_threads());
    CF_EQ("main TLS", 77, tls);
    pthread_mutex_lock(&mu);
    int want = answered + N;
    round_wanted++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&gate); /* lets thread 0 through */
    while (answered < want) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_lock(&gate);
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof what, "thread %d TLS", i);
        CF_EQ(what, 1000 + i, tls_seen[i]);
        snprintf(what, sizeof what, "thread %d tid", i);
        CF_EQ(what, first_tids[i], tids[i]);
    }
    size_t len;
    void *head = NULL;
    syscall(SYS_get_robust_list, 0, &head, &len);
    CF_EQ("main robust list registered", 1, head != NULL);
    void *ret = NULL;
    CF_EQ("a new thread starts", 0, pthread_create(&joinable, NULL, quick, NULL));
    CF_EQ("and is joined", 0, pthread_join(joinable, &ret));
    CF_EQ("with its result", 42, (long)ret);
}

CF_MAIN
