// Allocates and touches 1 MiB at a time until malloc fails, then aborts (the guest dies of it).
// With $LIMIT_MIB set it stops there instead and sleeps, holding the memory.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Every block is chained from this volatile root, so the compiler cannot elide the allocations.
static void *volatile chain;

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
    *(void **)p = chain;
    chain = p;
    mib++;
    if (mib % 16 == 0) printf("allocated %ld MiB\n", mib);
  }
}
