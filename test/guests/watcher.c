// Prints "PATH: CONTENT" for each argument at start and again whenever that file's content
// changes ("PATH: error: …" while it cannot be read), re-reading every $POLL_MS milliseconds
// (default 200); runs until stopped.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FILES 8
#define MAX_CONTENT 4096

static void read_file(const char *path, char *out) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(out, MAX_CONTENT, "error: %s", strerror(errno));
    return;
  }
  size_t n = fread(out, 1, MAX_CONTENT - 1, f);
  out[n] = 0;
  fclose(f);
}

int main(int argc, char **argv) {
  static char last[MAX_FILES][MAX_CONTENT];
  static char now[MAX_CONTENT];
  int files = argc - 1 < MAX_FILES ? argc - 1 : MAX_FILES;
  const char *poll_env = getenv("POLL_MS");
  long ms = poll_env ? atol(poll_env) : 200;
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  for (int i = 0; i < files; i++) last[i][0] = 1; /* never equal to a real read: print once */
  for (;;) {
    for (int i = 0; i < files; i++) {
      read_file(argv[i + 1], now);
      if (strcmp(now, last[i]) != 0) {
        printf("%s: %s\n", argv[i + 1], now);
        fflush(stdout);
        strcpy(last[i], now);
      }
    }
    nanosleep(&pause, NULL);
  }
}
