// Logs "tick N" every $TICK_MS milliseconds (default 100); stops after $COUNT ticks when set.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
  const char *ms_env = getenv("TICK_MS");
  const char *count_env = getenv("COUNT");
  long ms = ms_env ? atol(ms_env) : 100;
  long count = count_env ? atol(count_env) : -1;
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  for (long n = 1; count < 0 || n <= count; n++) {
    printf("tick %ld\n", n);
    fflush(stdout);
    nanosleep(&pause, NULL);
  }
  return 0;
}
