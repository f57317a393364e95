/* A parent with 3 children: each child appends lines to its own file with short sleeps and
 * exits with its index; one child exits early and stays a zombie for a while. The parent
 * reaps them in order and prints their statuses: usage forker DIR STEPS. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int steps = atoi(argv[2]);
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        pid_t p = fork();
        if (p < 0) return 3;
        if (p == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/child%d.txt", argv[1], k);
            FILE *f = fopen(path, "w");
            if (!f) _exit(20);
            int n = k == 0 ? 1 : steps;
            for (int i = 0; i < n; i++) {
                fprintf(f, "%d %d %d\n", k, i, getppid() == getpgid(0) ? 1 : 0);
                fflush(f);
                usleep(3000);
            }
            fclose(f);
            _exit(10 + k);
        }
        kids[k] = p;
    }
    /* child 0 finishes almost at once and stays a zombie while the parent sleeps. */
    usleep(steps * 2000);
    for (int k = 0; k < 3; k++) {
        int st;
        if (waitpid(kids[k], &st, 0) != kids[k]) return 4;
        printf("child %d exited %d\n", k, WEXITSTATUS(st));
    }
    printf("parent done\n");
    return 0;
}
