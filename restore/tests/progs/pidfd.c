/* Holds a pidfd (not checkpointable), sleeps, then exits 4. */
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    int fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0) return 2;
    usleep(400000);
    return 4;
}
