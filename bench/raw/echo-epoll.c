// echo-epoll: the raw WebSocket echo on epoll, the limit hioload-ws's epoll rows are measured
// against in bench/compare.ts.
//
//   echo-epoll PORT        (listens on 127.0.0.1, prints one line once listening)
//
// One thread, nonblocking sockets, edge-triggered epoll (each socket registered once for
// in and out), polled for 50 µs before each sleep (as hioload-ws spins). A readable socket
// is read until EAGAIN; each read is rewritten in place into its echo (ws-echo.h: unmask,
// server headers) and written at once. When the socket buffer
// is full the rest waits for EPOLLOUT and reading stops meanwhile (backpressure). TCP_NODELAY,
// as WebSocket servers set. It does not: run more than one thread, use writev or zero-copy,
// limit connections, or do any WebSocket beyond what ws-echo.h says. Runs until killed.
//
// Build: gcc -O2 -o echo-epoll bench/raw/echo-epoll.c
#include "ws-echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    struct ws_conn ws;
    int fd;
    size_t sent, pending; // output at ws.buf[sent..pending) not yet written
};

static int epfd;

static void drop(struct conn *c) {
    close(c->fd); // also leaves the epoll set
    free(c->ws.buf);
    free(c);
}

// Writes what is pending: 1 when all of it went, 0 when the socket is full, -1 on error.
static int flush(struct conn *c) {
    while (c->sent < c->pending) {
        ssize_t n = send(c->fd, c->ws.buf + c->sent, c->pending - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->sent += (size_t)n;
    }
    c->sent = c->pending = 0;
    return 1;
}

// Any event: finish the pending write, then read, echo and write until the socket is dry
// (a short read counts as dry: whatever arrives after it raises a new edge).
static void service(struct conn *c) {
    for (;;) {
        int flushed = flush(c);
        if (flushed < 0) goto fail;
        if (flushed == 0) return; // EPOLLOUT brings us back
        size_t room = ws_rx_room(&c->ws);
        ssize_t n = read(c->fd, ws_rx(&c->ws), room);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) goto fail;
        long out = ws_input(&c->ws, (size_t)n);
        if (out < 0) goto fail;
        c->pending = (size_t)out;
        if ((size_t)n < room) break; // a short read took all there was: new data is a new edge
    }
    if (flush(c) >= 0) return;
fail:
    drop(c);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) return perror("listen"), 1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; // NULL: the listener
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    printf("raw echo (epoll) listening on :%d\n", port);
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        // Poll for SPIN_NS before sleeping: a ping-pong then never pays for a wake-up.
        int n = epoll_wait(epfd, events, 256, 0);
        for (uint64_t until = now_ns() + SPIN_NS; n == 0 && now_ns() < until;) n = epoll_wait(epfd, events, 256, 0);
        if (n == 0) n = epoll_wait(epfd, events, 256, -1);
        if (n < 0 && errno != EINTR) return perror("epoll_wait"), 1;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c != NULL) {
                service(c);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                c->ws.buf = malloc(HEADROOM + RXBYTES + 1);
                struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
}
