/* A child traced by its parent (a debugger inside the job) and held in a ptrace stop: cairn
 * cannot restore a ptrace relation and refuses the checkpoint, naming the traced process and
 * its tracer; the job runs on.
 * kind: stopped processes
 * checks: the child stays traced by the parent and stopped (TracerPid, state t)
 * root: refused: is traced by process
 */
#include "conformance.h"
#include <sys/ptrace.h>
#include <sys/wait.h>

static pid_t child;
static int round_no;

static void setup(void) {
    child = fork();
    CF_TRY(child);
    if (child == 0) {
        for (;;) pause();
    }
    CF_TRY(ptrace(PTRACE_SEIZE, child, 0, 0));
    CF_TRY(ptrace(PTRACE_INTERRUPT, child, 0, 0));
    int st;
    CF_TRY(waitpid(child, &st, __WALL));
}

static void check(void) {
    round_no++;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", child);
    FILE *f = fopen(path, "r");
    int tracer = -1;
    char state = '?';
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "TracerPid:", 10)) tracer = atoi(line + 10);
        if (!strncmp(line, "State:", 6)) sscanf(line + 6, " %c", &state);
    }
    if (f) fclose(f);
    CF_EQ("TracerPid of the child", getpid(), tracer);
    CF_EQ("state of the child", 't', state);
    if (round_no == CF_CHECKS) {
        kill(child, SIGKILL);
        waitpid(child, NULL, __WALL);
    }
}
CF_MAIN
