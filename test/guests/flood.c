// Writes lines of $SIZE bytes (default 100, newline included) to stdout: $LINES of them, or
// forever when unset. With $NEWLINES=0 it writes the same bytes without any newline.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  long size = getenv("SIZE") ? atol(getenv("SIZE")) : 100;
  long lines = getenv("LINES") ? atol(getenv("LINES")) : -1;
  int newlines = !getenv("NEWLINES") || atoi(getenv("NEWLINES")) != 0;
  if (size < 1) size = 1;
  char *line = malloc((size_t)size);
  for (long i = 0; i < size; i++) line[i] = (char)('a' + i % 26);
  if (newlines) line[size - 1] = '\n';
  static char buffer[1 << 16];
  setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
  for (long n = 0; lines < 0 || n < lines; n++) fwrite(line, 1, (size_t)size, stdout);
  fflush(stdout);
  return 0;
}
