// ws-echo.h: the WebSocket part of the raw echo servers (echo-epoll.c, echo-uring.c).
//
// Just enough RFC 6455 for a load generator to drive: the HTTP upgrade is answered with a
// fixed 101 (Sec-WebSocket-Accept computed here: SHA-1 and base64, no library), then every
// client frame goes back as a server frame with the same FIN/opcode and payload: the mask
// bit is cleared and the payload unmasked as it streams through. A frame is never held
// whole: its header is written as soon as it is complete and its payload as it arrives, so
// frames split across reads, many frames in one read and 7/16/64-bit lengths all cost the
// same. It does NOT validate UTF-8, reassemble fragments, answer pings or act on a close (a
// close frame is echoed like any other, and the peer then hangs up), check the HTTP request
// beyond finding its Sec-WebSocket-Key, or limit message sizes. It is the least work a
// WebSocket echo can do: the "raw loopback limit" in bench/compare.ts.
//
// One buffer per connection: reads land at buf + HEADROOM, and ws_input() rewrites them in
// place into what must be sent, at buf[0..). A server header is 4 bytes shorter than the
// masked client header it replaces, so the output never overtakes the input (HEADROOM
// covers the 101 response and a header split across reads).
#ifndef WS_ECHO_H
#define WS_ECHO_H
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define HEADROOM 256
#define RXBYTES (256 * 1024) // bytes one read may bring
#define MAXREQUEST 4096      // a larger upgrade request is refused
#define SPIN_NS 50000        // poll this long for events before sleeping (as hioload-ws's 50 µs spin)

struct ws_conn {
    uint8_t *buf;      // HEADROOM + RXBYTES + 1
    size_t request;    // bytes of the upgrade request so far (until open)
    int open;          // the 101 was produced
    uint8_t hdr[14];   // a frame header split across reads
    uint8_t hdrlen;
    uint8_t mask[4];   // of the frame whose payload is streaming
    uint64_t left;     // payload bytes of that frame still to come
    uint64_t pos;      // payload bytes of that frame seen (mask phase)
};

// Where the next read goes, and how many bytes it may bring.
static inline uint8_t *ws_rx(struct ws_conn *c) { return c->buf + HEADROOM + (c->open ? 0 : c->request); }
static inline size_t ws_rx_room(struct ws_conn *c) { return c->open ? RXBYTES : MAXREQUEST - c->request; }

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// ------------------------------------------------------------------ SHA-1, base64

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t block[64];
    uint64_t bits = (uint64_t)len * 8;
    for (size_t done = 0, end = (len + 9 + 63) / 64 * 64; done < end; done += 64) {
        for (size_t i = 0; i < 64; i++) {
            size_t at = done + i;
            block[i] = at < len ? data[at] : at == len ? 0x80 : at >= end - 8 ? (uint8_t)(bits >> (8 * (end - 1 - at))) : 0;
        }
        uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 16; i++) w[i] = (uint32_t)block[4 * i] << 24 | block[4 * i + 1] << 16 | block[4 * i + 2] << 8 | block[4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        for (int i = 0; i < 80; i++) {
            uint32_t f = i < 20 ? ((b & c) | (~b & d)) + 0x5A827999
                       : i < 40 ? (b ^ c ^ d) + 0x6ED9EBA1
                       : i < 60 ? ((b & c) | (b & d) | (c & d)) + 0x8F1BBCDC
                                : (b ^ c ^ d) + 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        *out++ = abc[v >> 18], *out++ = abc[(v >> 12) & 63];
        *out++ = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        *out++ = i + 2 < len ? abc[v & 63] : '=';
    }
    *out = 0;
}

// ------------------------------------------------------------------ the echo

// dst[i] = src[i] ^ mask[(pos + i) & 3], 8 bytes at a time; dst <= src (the move is forward).
static void unmask_move(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], uint64_t pos) {
    uint8_t m[8];
    for (int i = 0; i < 8; i++) m[i] = mask[(pos + i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = src[i] ^ m[i & 7];
}

static inline size_t header_size(uint8_t b1) {
    uint8_t len7 = b1 & 127;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

// The upgrade request is whole at buf + HEADROOM (`end`: its length): writes the 101 at
// buf[0..) and returns its length, or 0 without a Sec-WebSocket-Key.
static size_t ws_respond(struct ws_conn *c, size_t end) {
    char *request = (char *)c->buf + HEADROOM;
    char saved = request[end];
    request[end] = 0;
    char *key = strcasestr(request, "\r\nSec-WebSocket-Key:");
    request[end] = saved;
    if (key == NULL) return 0;
    key += 20;
    while (*key == ' ' || *key == '\t') key++;
    size_t keylen = strcspn(key, " \t\r\n");
    if (keylen == 0 || keylen > 64) return 0;
    uint8_t joined[64 + 36], digest[20];
    memcpy(joined, key, keylen);
    memcpy(joined + keylen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    sha1(joined, keylen + 36, digest);
    char accept[29];
    base64(digest, 20, accept);
    return (size_t)sprintf((char *)c->buf,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
}

// `n` new bytes arrived at ws_rx(c). Rewrites them into the bytes to send, at c->buf[0..),
// and returns how many (0: nothing to send yet), or -1 when the connection must be closed.
static long ws_input(struct ws_conn *c, size_t n) {
    uint8_t *in = c->buf + HEADROOM, *out = c->buf;
    size_t r = 0, w = 0;
    if (!c->open) {
        size_t before = c->request;
        c->request += n;
        // Search from a little before the new bytes for the blank line ending the request.
        size_t from = before > 3 ? before - 3 : 0;
        uint8_t *end = memmem(in + from, c->request - from, "\r\n\r\n", 4);
        if (end == NULL) return c->request >= MAXREQUEST ? -1 : 0;
        r = (size_t)(end + 4 - in);
        n = c->request;
        w = ws_respond(c, r);
        if (w == 0) return -1;
        c->open = 1;
    }
    while (r < n) {
        if (c->left == 0) {
            // A frame header: in place when it is whole here, else gathered in c->hdr.
            const uint8_t *h;
            size_t size;
            if (c->hdrlen == 0 && n - r >= 2 && n - r >= header_size(in[r + 1])) {
                h = in + r;
                size = header_size(in[r + 1]);
                r += size;
            } else {
                while (r < n && (c->hdrlen < 2 || c->hdrlen < header_size(c->hdr[1]))) c->hdr[c->hdrlen++] = in[r++];
                if (c->hdrlen < 2 || c->hdrlen < header_size(c->hdr[1])) break;
                h = c->hdr;
                size = c->hdrlen;
                c->hdrlen = 0;
            }
            uint8_t b0 = h[0], b1 = h[1], len7 = b1 & 127;
            size_t lenbytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
            uint8_t ext[8];
            memcpy(ext, h + 2, lenbytes);
            uint64_t len = len7;
            if (lenbytes) {
                len = 0;
                for (size_t i = 0; i < lenbytes; i++) len = len << 8 | ext[i];
            }
            if (b1 & 0x80) memcpy(c->mask, h + size - 4, 4);
            else memset(c->mask, 0, 4);
            out[w++] = b0;
            out[w++] = len7;
            memcpy(out + w, ext, lenbytes);
            w += lenbytes;
            c->left = len;
            c->pos = 0;
            continue;
        }
        size_t k = n - r < c->left ? n - r : (size_t)c->left;
        unmask_move(out + w, in + r, k, c->mask, c->pos);
        r += k, w += k;
        c->left -= k, c->pos += k;
    }
    return (long)w;
}

#endif
