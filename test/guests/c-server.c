// A small HTTP/1.0 server on wasi-libc's accept/recv/send, serving the first pre-opened listener
// (LISTEN_FDS_START). Every response says how many connections it has served; `GET /bye` ends
// the guest with exit code 0 after answering.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = send(fd, data, length, 0);
    if (n < 0) return -1;
    data += n;
    length -= (size_t)n;
  }
  return 0;
}

int main(void) {
  const char *start = getenv("LISTEN_FDS_START");
  const char *count = getenv("LISTEN_FDS");
  if (!start || !count || atoi(count) < 1) {
    fprintf(stderr, "no listener: LISTEN_FDS=%s\n", count ? count : "(unset)");
    return 2;
  }
  int listener = atoi(start);
  printf("c-server listening on fd %d (%s)\n", listener, getenv("LISTEN_FDNAMES"));
  fflush(stdout);
  for (int served = 1;; served++) {
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) {
      perror("accept");
      return 1;
    }
    char request[4096];
    size_t used = 0;
    while (used < sizeof request - 1) {
      ssize_t n = recv(connection, request + used, sizeof request - 1 - used, 0);
      if (n <= 0) break;
      used += (size_t)n;
      request[used] = 0;
      if (strstr(request, "\r\n\r\n")) break;
    }
    request[used] = 0;
    int bye = strncmp(request, "GET /bye ", 9) == 0;
    char body[128];
    int length = snprintf(body, sizeof body, "hello from c, connection %d\n", served);
    char head[256];
    int head_length = snprintf(head, sizeof head,
                               "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: %d\r\nConnection: close\r\n\r\n",
                               length);
    if (send_all(connection, head, (size_t)head_length) < 0 ||
        send_all(connection, body, (size_t)length) < 0)
      perror("send");
    shutdown(connection, SHUT_WR);
    close(connection);
    if (bye) return 0;
  }
}
