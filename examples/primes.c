/* The demo program of scripts/demo.sh: finds primes slowly, printing each one, and keeps a
 * running checksum in memory, so a restarted run that continues correctly prints exactly what
 * an uninterrupted run prints. usage: primes COUNT [DELAY_MS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 100;
    long delay_ms = argc > 2 ? atol(argv[2]) : 50;
    long *primes = malloc((size_t)count * sizeof *primes);
    if (!primes) { perror("malloc"); return 1; }
    unsigned long long sum = 0;
    long found = 0;
    for (long n = 2; found < count; n++) {
        int prime = 1;
        for (long i = 0; i < found && primes[i] * primes[i] <= n; i++)
            if (n % primes[i] == 0) { prime = 0; break; }
        if (!prime) continue;
        primes[found++] = n;
        sum = sum * 31 + (unsigned long long)n;
        printf("prime %ld = %ld (checksum %llu)\n", found, n, sum);
        fflush(stdout);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("done: %ld primes, checksum %llu\n", found, sum);
    free(primes);
    return 0;
}
