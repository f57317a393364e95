/* Holds an eventfd (not checkpointable yet), sleeps, then exits 4. */
#include <sys/eventfd.h>
#include <unistd.h>
int main(void) {
    int fd = eventfd(0, 0);
    if (fd < 0) return 2;
    usleep(400000);
    return 4;
}
