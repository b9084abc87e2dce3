// A guest that does what a hostile guest would, one attack per command, and prints what the host
// answered (for the bad-input corpus, test/e2e/security/bad-input.test.ts):
//   (none)              print "ready" and sleep forever (a container to exec the attacks into)
//   fdwrite             one fd_write of 64 iovecs, each over the same 32 MiB buffer (2 GiB in one
//                       call); reports on stderr how much the host took
//   alloc MIB           allocate and touch MIB MiB, then exit 0 (memory a finished guest leaves)
//   openfiles PATH      open PATH (read-only) again and again, holding every descriptor, until an
//                       open fails; reports how many it got and the errno, then exits 0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

#define BUFFER_BYTES (32u << 20)
#define IOVECS 64

static int fdwrite(void) {
  char *buffer = malloc(BUFFER_BYTES);
  if (!buffer) {
    fprintf(stderr, "malloc failed\n");
    return 1;
  }
  // Lines of 64 bytes, so the log keeps whole records.
  for (size_t i = 0; i < BUFFER_BYTES; i++) buffer[i] = (i % 64 == 63) ? '\n' : 'x';
  __wasi_ciovec_t iovs[IOVECS];
  for (int i = 0; i < IOVECS; i++) iovs[i] = (__wasi_ciovec_t){(const uint8_t *)buffer, BUFFER_BYTES};
  __wasi_size_t written = 0;
  __wasi_errno_t error = __wasi_fd_write(1, iovs, IOVECS, &written);
  fprintf(stderr, "fd_write of %llu bytes: errno %d, %u bytes taken\n",
          (unsigned long long)BUFFER_BYTES * IOVECS, (int)error, (unsigned)written);
  return 0;
}

static int alloc(long mib) {
  for (long i = 0; i < mib; i++) {
    char *block = malloc(1 << 20);
    if (!block) {
      printf("malloc failed after %ld MiB\n", i);
      return 1;
    }
    memset(block, 1, 1 << 20);
  }
  printf("allocated %ld MiB\n", mib);
  return 0;
}

static int openfiles(const char *path) {
  int opened = 0;
  for (;;) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
      printf("opened %d, then errno %d (%s)\n", opened, errno, strerror(errno));
      return 0;
    }
    opened++;
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "fdwrite") == 0) return fdwrite();
  if (argc > 2 && strcmp(argv[1], "alloc") == 0) return alloc(atol(argv[2]));
  if (argc > 2 && strcmp(argv[1], "openfiles") == 0) return openfiles(argv[2]);
  if (argc > 1) {
    fprintf(stderr, "unknown command %s\n", argv[1]);
    return 127;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) sleep(60);
}
