/* Process groups and sessions: child A leads its own process group, child B its own session;
 * each loops in usleep until signalled. After a while the parent signals A's group and B's
 * session leader, reaps both and prints what it saw: usage pgroup DELAY_MS. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int delay = argc > 1 ? atoi(argv[1]) : 500;
    int p[2];
    if (pipe(p) < 0) return 2;
    pid_t a = fork();
    if (a == 0) {
        setpgid(0, 0);
        write(p[1], "a", 1);
        for (;;) usleep(1000);
    }
    pid_t b = fork();
    if (b == 0) {
        setsid();
        write(p[1], "b", 1);
        for (;;) usleep(1000);
    }
    char c[2];
    for (int got = 0; got < 2;) {
        ssize_t r = read(p[0], c + got, 2 - got);
        if (r <= 0) { kill(a, SIGKILL); kill(b, SIGKILL); return 3; }
        got += r;
    }
    for (int i = 0; i < delay; i += 10) usleep(10000);
    printf("a leads its group: %d\n", getpgid(a) == a);
    printf("b leads its session: %d\n", getsid(b) == b);
    printf("parent session differs from b: %d\n", getsid(0) != b);
    if (kill(-a, SIGTERM) < 0) return 4;
    if (kill(b, SIGUSR1) < 0) return 5;
    int st;
    if (waitpid(a, &st, 0) != a) return 6;
    printf("a: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    if (waitpid(b, &st, 0) != b) return 7;
    printf("b: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return 0;
}
