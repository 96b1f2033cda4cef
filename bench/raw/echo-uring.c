// echo-uring: the raw WebSocket echo on io_uring, the limit hioload-ws's io_uring rows are
// measured against in bench/compare.ts.
//
//   echo-uring PORT        (listens on 127.0.0.1, prints one line once listening)
//
// One thread, one ring (single issuer, deferred task work where the kernel has them). A
// multishot accept takes connections; each connection then loops on its own buffer: a recv,
// its echo rewritten in place (ws-echo.h), then a send of it with MSG_WAITALL linked to the
// next recv, so the kernel finishes the send (however long the socket stays full) before it
// reads again (backpressure) and one submission carries both. Every completion of a batch is
// handled before the next io_uring_enter, which also submits what they queued; with nothing
// to reap it polls for 50 µs before it sleeps (as hioload-ws spins). It does not:
// use provided buffer rings, multishot recv, registered files, zero-copy sends or more than
// one thread, or do any WebSocket beyond what ws-echo.h says. Runs until killed.
//
// Build: gcc -O2 -o echo-uring bench/raw/echo-uring.c -luring
#include "ws-echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { OP_ACCEPT, OP_RECV, OP_SEND };

struct conn {
    struct ws_conn ws;
    int fd;
};

static struct io_uring ring;

static struct io_uring_sqe *sqe(void) {
    struct io_uring_sqe *s;
    while ((s = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring);
    return s;
}

// user_data: the connection's address with the operation in its low bits (malloc aligns to 16).
static void tag(struct io_uring_sqe *s, struct conn *c, int op) { io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | op); }

static void recv_next(struct conn *c) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv(s, c->fd, ws_rx(&c->ws), ws_rx_room(&c->ws), 0);
    tag(s, c, OP_RECV);
}

static void accept_more(int lfd) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
    tag(s, NULL, OP_ACCEPT);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) return perror("listen"), 1;
    struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (io_uring_queue_init_params(4096, &ring, &params) < 0) {
        params.flags = 0; // kernels before 6.1
        int err = io_uring_queue_init_params(4096, &ring, &params);
        if (err < 0) return fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-err)), 1;
    }
    accept_more(lfd);
    printf("raw echo (io_uring) listening on :%d\n", port);
    fflush(stdout);

    for (;;) {
        // Submit and reap without sleeping for SPIN_NS, then sleep until a completion: a
        // ping-pong then never pays for a wake-up.
        int err = io_uring_submit_and_get_events(&ring);
        for (uint64_t until = now_ns() + SPIN_NS; err >= 0 && !io_uring_cq_ready(&ring) && now_ns() < until;)
            err = io_uring_get_events(&ring);
        if (err >= 0 && !io_uring_cq_ready(&ring)) err = io_uring_submit_and_wait(&ring, 1);
        if (err < 0 && err != -EINTR) return fprintf(stderr, "io_uring_enter: %s\n", strerror(-err)), 1;
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            int op = (int)(cqe->user_data & 15), res = cqe->res;
            struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)15);
            if (op == OP_ACCEPT) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) accept_more(lfd);
                if (res < 0) continue;
                setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = res;
                c->ws.buf = malloc(HEADROOM + RXBYTES + 1);
                recv_next(c);
            } else if (op == OP_RECV) {
                // The last operation of a connection's chain: a failed send cancels it (-ECANCELED).
                long out = res > 0 ? ws_input(&c->ws, (size_t)res) : -1;
                if (out < 0) {
                    close(c->fd);
                    free(c->ws.buf);
                    free(c);
                } else if (out == 0) {
                    recv_next(c);
                } else {
                    if (io_uring_sq_space_left(&ring) < 2) io_uring_submit(&ring); // keep the pair in one submission
                    struct io_uring_sqe *s = sqe();
                    io_uring_prep_send(s, c->fd, c->ws.buf, (size_t)out, MSG_WAITALL | MSG_NOSIGNAL);
                    tag(s, c, OP_SEND);
                    s->flags |= IOSQE_IO_LINK;
                    recv_next(c);
                }
            }
            // OP_SEND: nothing to do; when it fails or falls short, its linked recv reports it.
        }
        io_uring_cq_advance(&ring, seen);
    }
}
