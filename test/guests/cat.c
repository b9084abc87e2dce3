// Copies stdin to stdout as it arrives, then reports on stderr how many bytes it read and exits
// with $EXIT_CODE (default 0).
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  char buf[4096];
  long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0) {
      perror("read");
      return 2;
    }
    if (n == 0) break;
    total += n;
    if (write(1, buf, (size_t)n) != n) return 3;
  }
  fprintf(stderr, "EOF after %ld bytes\n", total);
  const char *code = getenv("EXIT_CODE");
  return code ? atoi(code) : 0;
}
