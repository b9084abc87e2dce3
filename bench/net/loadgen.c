// The network benchmark's load generator (bench/net/index.ts builds it with gcc -O2): one thread,
// epoll, non-blocking sockets to 127.0.0.1:PORT, CONNS connections busy at once. It runs
// WARMUP_MS unmeasured, then DURATION_MS measured, and prints one JSON line:
//   m
//   {"ops":…,"bytes":…,"stream_bytes":…,"seconds":…,"p50_us":…,"p99_us":…,"errors":…,"cpu_s":…}
// where ops are completed requests (or round trips), bytes the bodies (or echoed bytes) of those,
// stream_bytes the body bytes received in the window as they arrive (for the bulk rate: an 8 MiB
// response may straddle the window's ends), latencies are per operation (request written → whole response read), and cpu_s is
// this process's own CPU time during the measured window (so its share of a core is visible).
//
//   loadgen get   PORT CONNS WARMUP_MS DURATION_MS PATH          HTTP/1.1 keep-alive GETs
//   loadgen post  PORT CONNS WARMUP_MS DURATION_MS PATH BYTES    keep-alive POSTs of BYTES, echoed
//   loadgen close PORT CONNS WARMUP_MS DURATION_MS PATH          HTTP/1.0, a connection per request
//   loadgen echo  PORT CONNS WARMUP_MS DURATION_MS BYTES         raw TCP round trips of BYTES
//
// Responses must carry Content-Length (keep-alive modes) or end with the connection (close mode);
// a response that is not "200" counts as an error, as does a connection the server drops.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { GET, POST, CLOSE, ECHO };

#define HEAD_MAX 8192
#define SCRATCH (256 * 1024)

struct conn {
  int fd;
  int connected;
  /* what is left to write of the request: the head (req) then `body_left` bytes of the body */
  size_t req_off;
  size_t body_off;
  /* the response */
  char head[HEAD_MAX];
  size_t head_len;
  int head_done;
  long long body_left; /* -1: until end of stream */
  int status_ok;
  size_t got; /* echo: bytes back so far */
  uint64_t t0;
};

static enum mode mode;
static int port, nconns;
static const char *path = "/";
static size_t body_bytes;
static char *request;
static size_t request_len;
static char *body;
static char scratch[SCRATCH];
static int ep;
static int measuring;
static uint64_t ops, bytes_in, stream_bytes, errors;
static uint64_t *lat;
static size_t lat_len, lat_cap;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void record(uint64_t ns, uint64_t received) {
  if (!measuring) return;
  ops++;
  bytes_in += received;
  if (lat_len == lat_cap) {
    lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
    lat = realloc(lat, lat_cap * sizeof *lat);
    if (!lat) abort();
  }
  lat[lat_len++] = ns;
}

static void start_request(struct conn *c) {
  c->req_off = 0;
  c->body_off = 0;
  c->head_len = 0;
  c->head_done = 0;
  c->body_left = 0;
  c->status_ok = 0;
  c->got = 0;
  c->t0 = now_ns();
}

static void open_conn(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("socket");
    exit(1);
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->connected = 0;
  start_request(c);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    perror("connect");
    exit(1);
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void reopen(struct conn *c, int failed) {
  if (failed && measuring) errors++;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  open_conn(c);
}

static void want_write(struct conn *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is left of the request; 1 when all of it is out, 0 when the socket is full, -1. */
static int flush_request(struct conn *c) {
  while (c->req_off < request_len) {
    ssize_t n = send(c->fd, request + c->req_off, request_len - c->req_off, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->req_off += (size_t)n;
  }
  while (c->body_off < body_bytes) {
    ssize_t n = send(c->fd, body + c->body_off, body_bytes - c->body_off, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->body_off += (size_t)n;
  }
  return 1;
}

/* Parses the head once "\r\n\r\n" is in: status and Content-Length. Returns bytes of body already
   in head[], or -1 when the head is not complete yet, -2 when it is unusable. */
static long long parse_head(struct conn *c) {
  c->head[c->head_len] = 0;
  char *end = strstr(c->head, "\r\n\r\n");
  if (!end) return c->head_len >= HEAD_MAX - 1 ? -2 : -1;
  c->head_done = 1;
  c->status_ok = strncmp(c->head + 8, " 200", 4) == 0;
  long long length = -1;
  for (char *line = strstr(c->head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atoll(line + 17);
  }
  size_t extra = c->head_len - (size_t)(end + 4 - c->head);
  if (mode == CLOSE) {
    c->body_left = -1;
  } else {
    if (length < 0) return -2;
    c->body_left = length - (long long)extra;
  }
  return (long long)extra;
}

static void done(struct conn *c, uint64_t received) {
  uint64_t t = now_ns();
  if (!c->status_ok && mode != ECHO) {
    if (measuring) errors++;
  } else {
    record(t - c->t0, received);
  }
}

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t n;
    if (mode != ECHO && !c->head_done) {
      n = recv(c->fd, c->head + c->head_len, HEAD_MAX - 1 - c->head_len, 0);
    } else {
      n = recv(c->fd, scratch, sizeof scratch, 0);
    }
    if (n < 0) {
      if (errno == EAGAIN) return;
      reopen(c, 1);
      return;
    }
    if (n == 0) {
      if (mode == CLOSE && c->head_done) {
        done(c, c->got);
        reopen(c, 0);
      } else {
        reopen(c, 1);
      }
      return;
    }
    if (measuring && (mode == ECHO || c->head_done)) stream_bytes += (uint64_t)n;
    if (mode == ECHO) {
      c->got += (size_t)n;
      if (c->got >= body_bytes) {
        done(c, c->got);
        start_request(c);
        int w = flush_request(c);
        if (w < 0) return reopen(c, 1);
        if (w == 0) want_write(c, 1);
      }
      continue;
    }
    if (!c->head_done) {
      c->head_len += (size_t)n;
      long long extra = parse_head(c);
      if (extra == -1) continue;
      if (extra == -2) return reopen(c, 1);
      c->got = (size_t)extra;
      if (measuring) stream_bytes += (uint64_t)extra;
    } else {
      c->got += (size_t)n;
      if (c->body_left > 0) c->body_left -= n;
    }
    if (c->body_left == 0) {
      done(c, c->got);
      start_request(c);
      int w = flush_request(c);
      if (w < 0) return reopen(c, 1);
      if (w == 0) want_write(c, 1);
    }
  }
}

static void on_event(struct conn *c, uint32_t events) {
  if (events & EPOLLOUT) {
    if (!c->connected) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) return reopen(c, 1);
      c->connected = 1; /* latency counts from the connect's start: accepting is the server's work */
    }
    int w = flush_request(c);
    if (w < 0) return reopen(c, 1);
    if (w == 1) want_write(c, 0);
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) on_readable(c);
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: loadgen get|post|close|echo PORT CONNS WARMUP_MS DURATION_MS ARGS...\n");
    return 2;
  }
  if (!strcmp(argv[1], "get")) mode = GET;
  else if (!strcmp(argv[1], "post")) mode = POST;
  else if (!strcmp(argv[1], "close")) mode = CLOSE;
  else if (!strcmp(argv[1], "echo")) mode = ECHO;
  else return 2;
  port = atoi(argv[2]);
  nconns = atoi(argv[3]);
  long warmup_ms = atol(argv[4]), duration_ms = atol(argv[5]);
  request = malloc(1024);
  if (mode == ECHO) {
    body_bytes = (size_t)atol(argv[6]);
    request_len = 0;
  } else {
    path = argv[6];
    if (mode == POST) {
      if (argc < 8) return 2;
      body_bytes = (size_t)atol(argv[7]);
      request_len = (size_t)snprintf(request, 1024,
                                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Type: application/octet-stream\r\n"
                                     "Content-Length: %zu\r\n\r\n",
                                     path, body_bytes);
    } else if (mode == GET) {
      request_len = (size_t)snprintf(request, 1024, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    } else {
      request_len = (size_t)snprintf(request, 1024, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    }
  }
  body = malloc(body_bytes ? body_bytes : 1);
  for (size_t i = 0; i < body_bytes; i++) body[i] = (char)('a' + i % 26);

  ep = epoll_create1(EPOLL_CLOEXEC);
  struct conn *conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) open_conn(&conns[i]);

  uint64_t start = now_ns();
  uint64_t measure_at = start + (uint64_t)warmup_ms * 1000000ull;
  uint64_t end_at = measure_at + (uint64_t)duration_ms * 1000000ull;
  uint64_t measured_from = 0;
  double cpu0 = 0;
  struct epoll_event events[256];
  for (;;) {
    uint64_t t = now_ns();
    if (!measuring && t >= measure_at) {
      measuring = 1;
      measured_from = t;
      cpu0 = cpu_seconds();
      printf("m\n"); /* tells bench/net/index.ts to read the server's CPU time */
      fflush(stdout);
    }
    if (t >= end_at) break;
    uint64_t next = measuring ? end_at : measure_at;
    int timeout = (int)((next - t) / 1000000ull) + 1;
    int n = epoll_wait(ep, events, 256, timeout);
    for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
  }
  double seconds = (double)(now_ns() - measured_from) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  qsort(lat, lat_len, sizeof *lat, cmp);
  double p50 = lat_len ? lat[lat_len / 2] / 1e3 : 0;
  double p99 = lat_len ? lat[(size_t)((double)lat_len * 0.99)] / 1e3 : 0;
  printf("{\"ops\":%llu,\"bytes\":%llu,\"stream_bytes\":%llu,\"seconds\":%.4f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"errors\":%llu,\"cpu_s\":%.4f}\n",
         (unsigned long long)ops, (unsigned long long)bytes_in, (unsigned long long)stream_bytes, seconds, p50, p99,
         (unsigned long long)errors, cpu);
  return 0;
}
