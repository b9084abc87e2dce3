// A long-running container that is also a command: without arguments it prints "ready" and then
// echoes every line of stdin to stdout (forever, while stdin stays open; then it sleeps), so
// `kubectl attach` has something to see and to talk to. With arguments it runs one command, for
// `kubectl exec`:
//   echo WORDS...   print the words
//   fail N          print "failing with N" to stderr and exit N
//   env NAME        print $NAME
//   exists PATH     exit 0 when PATH exists, else say so and exit 1 (for exec probes)
//   touch PATH      create PATH
//   cat             copy stdin to stdout until end of file, then say how many bytes it read
// Given listening sockets (LISTEN_FDS), it serves them instead: an echo server on poll(), every
// byte a client sends comes back, many clients at once.
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_POLLED 256

static void serve(int first, int count) {
  struct pollfd polled[MAX_POLLED];
  int n = 0;
  for (int i = 0; i < count && n < MAX_POLLED; i++) polled[n++] = (struct pollfd){first + i, POLLIN, 0};
  printf("echoing on %d listener(s)\n", count);
  fflush(stdout);
  for (;;) {
    if (poll(polled, (nfds_t)n, -1) < 0) {
      perror("poll");
      exit(1);
    }
    for (int i = 0; i < n; i++) {
      if (!polled[i].revents) continue;
      if (i < count) {
        int connection = accept(polled[i].fd, NULL, NULL);
        if (connection < 0) perror("accept");
        else if (n == MAX_POLLED) close(connection);
        else polled[n++] = (struct pollfd){connection, POLLIN, 0};
        continue;
      }
      char buffer[16384];
      ssize_t got = recv(polled[i].fd, buffer, sizeof buffer, 0);
      ssize_t sent = 0;
      while (got > 0 && sent < got) {
        ssize_t w = send(polled[i].fd, buffer + sent, (size_t)(got - sent), 0);
        if (w <= 0) break;
        sent += w;
      }
      if (got <= 0 || sent < got) {
        close(polled[i].fd);
        polled[i--] = polled[--n];
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "echo") == 0) {
      for (int i = 2; i < argc; i++) printf(i + 1 < argc ? "%s " : "%s\n", argv[i]);
      return 0;
    }
    if (strcmp(argv[1], "fail") == 0 && argc > 2) {
      fprintf(stderr, "failing with %s\n", argv[2]);
      return atoi(argv[2]);
    }
    if (strcmp(argv[1], "env") == 0 && argc > 2) {
      const char *value = getenv(argv[2]);
      printf("%s\n", value ? value : "");
      return value ? 0 : 1;
    }
    if (strcmp(argv[1], "exists") == 0 && argc > 2) {
      if (access(argv[2], F_OK) == 0) return 0;
      printf("%s does not exist\n", argv[2]);
      return 1;
    }
    if (strcmp(argv[1], "touch") == 0 && argc > 2) {
      FILE *f = fopen(argv[2], "a");
      if (!f) {
        perror(argv[2]);
        return 1;
      }
      fclose(f);
      return 0;
    }
    if (strcmp(argv[1], "cat") == 0) {
      long total = 0;
      int c;
      while ((c = getchar()) != EOF) {
        putchar(c);
        total++;
      }
      printf("read %ld bytes\n", total);
      return 0;
    }
    fprintf(stderr, "unknown command %s\n", argv[1]);
    return 127;
  }
  const char *listeners = getenv("LISTEN_FDS");
  if (listeners && atoi(listeners) > 0) serve(atoi(getenv("LISTEN_FDS_START")), atoi(listeners));
  printf("ready\n");
  fflush(stdout);
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    printf("got: %s", line);
    fflush(stdout);
  }
  for (;;) sleep(60);
}
