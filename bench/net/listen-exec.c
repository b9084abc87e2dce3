// Starts a native server the way wasmlet starts a guest: with a listening socket already open.
//   listen-exec PORT NAME PROGRAM [ARGS...]
// listens on 127.0.0.1:PORT (SO_REUSEADDR, backlog 511, as the runtime's listeners), puts the
// socket at descriptor 3 and execs PROGRAM with LISTEN_FDS=1, LISTEN_FDS_START=3 and
// LISTEN_FDNAMES=NAME (systemd's socket-activation variables, which the test guests read).
// SIGPIPE is ignored (the disposition survives exec): a send to a connection the client reset
// then fails with EPIPE, as it does for a guest, instead of killing the C servers, which do not
// ask for MSG_NOSIGNAL.
// bench/net/index.ts builds it with gcc, so the native servers run unmodified.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: listen-exec PORT NAME PROGRAM [ARGS...]\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 511) < 0) {
    perror("listen-exec: listen");
    return 1;
  }
  if (fd != 3) {
    if (dup2(fd, 3) < 0) {
      perror("listen-exec: dup2");
      return 1;
    }
    close(fd);
  }
  signal(SIGPIPE, SIG_IGN);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDS_START", "3", 1);
  setenv("LISTEN_FDNAMES", argv[2], 1);
  execv(argv[3], argv + 3);
  perror("listen-exec: exec");
  return 127;
}
