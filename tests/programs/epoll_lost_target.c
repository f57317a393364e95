/* An epoll entry whose target this process no longer holds: the eventfd registered as a
 * descriptor that was closed since, the file kept open only by a child. cairn must refuse
 * to checkpoint it, saying so, and leave the program running.
 * Usage: epoll_lost_target STEPS. Prints its pid, "step N" every 20 ms, then "done". */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    int e = eventfd(1, 0), p[2];
    if (e < 0 || pipe(p) < 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) > 0) {}
        return 0;
    }
    close(p[0]);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) < 0) return 2;
    int tfd = e;
    close(e);
    printf("pid %d, epoll fd %d, target fd %d\n", getpid(), ep, tfd);
    for (int i = 1; i <= steps; i++) {
        printf("step %d\n", i);
        fflush(stdout);
        usleep(20000);
    }
    close(p[1]);
    waitpid(child, NULL, 0);
    printf("done\n");
    return 0;
}
