// Calls the preview1 socket functions on the standard descriptors and a preopen, and prints each
// errno. Plain node:wasi crashes the whole process (SIGSEGV) on sock_accept of fd 0-2.
#include <stdio.h>
#include <wasi/api.h>

int main(void) {
  for (int fd = 0; fd <= 3; fd++) {
    __wasi_fd_t accepted = 0;
    printf("sock_accept(%d) = %d\n", fd, (int)__wasi_sock_accept((__wasi_fd_t)fd, 0, &accepted));
    fflush(stdout);
  }
  char data[4] = "abc";
  __wasi_iovec_t in = {(uint8_t *)data, sizeof data};
  __wasi_ciovec_t out = {(const uint8_t *)data, sizeof data};
  __wasi_size_t n = 0;
  __wasi_roflags_t flags = 0;
  printf("sock_recv(0) = %d\n", (int)__wasi_sock_recv(0, &in, 1, 0, &n, &flags));
  printf("sock_send(1) = %d\n", (int)__wasi_sock_send(1, &out, 1, 0, &n));
  printf("sock_shutdown(2) = %d\n", (int)__wasi_sock_shutdown(2, __WASI_SDFLAGS_RD));
  printf("survived\n");
  return 0;
}
