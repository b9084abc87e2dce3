// Prints its arguments and environment, one per line, then exits with $EXIT_CODE (default 0).
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
  printf("hello from wasm\n");
  for (int i = 0; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env %s\n", *e);
  fprintf(stderr, "hello on stderr\n");
  const char *code = getenv("EXIT_CODE");
  return code ? atoi(code) : 0;
}
