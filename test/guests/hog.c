// Allocates and touches 1 MiB at a time until malloc fails, then aborts (the guest dies of it).
// With $LIMIT_MIB set it stops there instead and sleeps, holding the memory. (Like memhog.c, but
// the blocks are kept where the compiler must assume they are used: at -O2 clang removes a
// malloc+memset whose result is never read, and memhog.c then allocates nothing.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *volatile blocks[4096];

int main(void) {
  const char *limit_env = getenv("LIMIT_MIB");
  long limit = limit_env ? atol(limit_env) : -1;
  long mib = 0;
  for (;;) {
    if (limit >= 0 && mib >= limit) {
      printf("holding %ld MiB\n", mib);
      fflush(stdout);
      for (;;) sleep(1);
    }
    char *p = malloc(1 << 20);
    if (!p) {
      fprintf(stderr, "malloc failed after %ld MiB\n", mib);
      abort();
    }
    memset(p, 1, 1 << 20);
    blocks[mib % 4096] = p;
    mib++;
    if (mib % 16 == 0) {
      printf("allocated %ld MiB\n", mib);
      fflush(stdout);
    }
  }
}
