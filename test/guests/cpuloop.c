// A CPU-bound integer loop. With an argument N it runs N rounds and prints a checksum (the
// benchmark builds this same file natively with gcc); without one it never ends.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  long rounds = argc > 1 ? atol(argv[1]) : -1;
  uint64_t x = 88172645463325252ULL, sum = 0;
  for (long r = 0; rounds < 0 || r < rounds; r++) {
    for (int i = 0; i < 1000000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      sum += x % 1000003;
    }
  }
  printf("checksum %llu\n", (unsigned long long)sum);
  return 0;
}
