// hello-c: a C guest built with clang and wasi-libc. It greets and lists its environment.
#include <stdio.h>

extern char **environ;

int main(void) {
  printf("Hello from C compiled to WebAssembly!\n");
  for (char **e = environ; *e; e++) printf("  %s\n", *e);
  return 0;
}
