// defer-taskrun-wake: how late a ring's registered eventfd fires for a socket receive, with
// and without IORING_SETUP_DEFER_TASKRUN. Why hioload-ws's io_uring backend leaves
// DEFER_TASKRUN off by default: its loop parks on that eventfd inside Bun's event loop.
//
//   gcc -O2 -o /tmp/defer-taskrun-wake test/tools/defer-taskrun-wake.c -luring -lpthread
//   /tmp/defer-taskrun-wake
//
// A thread sends one byte over loopback TCP every 50 ms; the main thread has a recv queued
// on the ring and busy-polls both the ring's IORING_SQ_TASKRUN flag (TASKRUN_FLAG set) and
// the eventfd, and prints how long after the send each turned up. On kernel 6.18 (this
// project's box, Firecracker VM): with DEFER_TASKRUN the flag is set 0.04–0.07 ms after the
// send but the eventfd fires 13–19 ms after it; without DEFER_TASKRUN the eventfd fires
// after ~0.09 ms. The ring's own fd never polled readable for the deferred work either.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 6 };
static volatile double sent_at;
static int port;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *sender(void *unused) {
    (void)unused;
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) return NULL;
    for (int i = 0; i < ROUNDS; i++) {
        usleep(50000);
        sent_at = now_ms();
        if (write(fd, "x", 1) != 1) break;
    }
    return NULL;
}

static int readable(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

static int measure(int defer) {
    unsigned flags = IORING_SETUP_TASKRUN_FLAG |
        (defer ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN : IORING_SETUP_COOP_TASKRUN);
    struct io_uring ring;
    if (io_uring_queue_init(64, &ring, flags) != 0) return printf("io_uring_queue_init failed\n"), 1;
    int efd = eventfd(0, EFD_NONBLOCK);
    io_uring_register_eventfd(&ring, efd);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in here = { .sin_family = AF_INET };
    here.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof here;
    bind(listener, (struct sockaddr *)&here, sizeof here);
    listen(listener, 4);
    getsockname(listener, (struct sockaddr *)&here, &length);
    port = ntohs(here.sin_port);
    sent_at = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, sender, NULL);
    int conn = accept(listener, NULL, NULL);

    char byte[16];
    printf("%s:\n", defer ? "DEFER_TASKRUN" : "COOP_TASKRUN (no DEFER_TASKRUN)");
    for (int i = 0; i < ROUNDS; i++) {
        io_uring_prep_recv(io_uring_get_sqe(&ring), conn, byte, sizeof byte, 0);
        io_uring_submit_and_get_events(&ring);
        uint64_t count;
        while (read(efd, &count, 8) == 8) {}
        double previous = sent_at;
        while (sent_at == previous) {}
        double flag_at = 0, eventfd_at = 0;
        while (eventfd_at == 0 && now_ms() - sent_at < 200) {
            double t = now_ms();
            if (flag_at == 0 && (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN)) flag_at = t;
            if (readable(efd)) eventfd_at = t;
        }
        printf("  TASKRUN flag %7.3f ms, eventfd %7.3f ms after the send\n",
            flag_at ? flag_at - sent_at : -1, eventfd_at ? eventfd_at - sent_at : -1);
        io_uring_get_events(&ring);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) io_uring_cqe_seen(&ring, cqe);
    }
    pthread_join(thread, NULL);
    close(conn);
    close(listener);
    close(efd);
    io_uring_queue_exit(&ring);
    return 0;
}

int main(void) {
    return measure(1) || measure(0);
}
