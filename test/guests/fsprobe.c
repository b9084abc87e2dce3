// Runs file-system operations named on the command line and prints one result line each:
//   read P | write P TEXT | append P TEXT | mkdir P | rmdir P | unlink P | rename A B |
//   symlink TARGET P | link A B | readlink P | stat P | list P | touch P | truncate P |
//   env NAME | wait (reads stdin to its end)
// Result: "<op> <path>: ok[ <detail>]" or "<op> <path>: error <errno> <strerror>".
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static void report(const char *op, const char *path, int rc, const char *detail) {
  if (rc == 0) printf("%s %s: ok%s%s\n", op, path, detail ? " " : "", detail ? detail : "");
  else printf("%s %s: error %d %s\n", op, path, errno, strerror(errno));
}

int main(int argc, char **argv) {
  char buf[4096];
  for (int i = 1; i < argc; i++) {
    const char *op = argv[i];
    const char *p = i + 1 < argc ? argv[i + 1] : "";
    const char *q = i + 2 < argc ? argv[i + 2] : "";
    errno = 0;
    if (!strcmp(op, "read")) {
      int fd = open(p, O_RDONLY);
      ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
      if (n >= 0) buf[n] = 0;
      report(op, p, n < 0 ? -1 : 0, n < 0 ? NULL : buf);
      if (fd >= 0) close(fd);
      i += 1;
    } else if (!strcmp(op, "write") || !strcmp(op, "append")) {
      int flags = O_WRONLY | O_CREAT | (!strcmp(op, "append") ? O_APPEND : O_TRUNC);
      int fd = open(p, flags, 0644);
      ssize_t n = fd < 0 ? -1 : write(fd, q, strlen(q));
      report(op, p, n < 0 ? -1 : 0, NULL);
      if (fd >= 0) close(fd);
      i += 2;
    } else if (!strcmp(op, "mkdir")) {
      report(op, p, mkdir(p, 0755), NULL);
      i += 1;
    } else if (!strcmp(op, "rmdir")) {
      report(op, p, rmdir(p), NULL);
      i += 1;
    } else if (!strcmp(op, "unlink")) {
      report(op, p, unlink(p), NULL);
      i += 1;
    } else if (!strcmp(op, "rename")) {
      report(op, p, rename(p, q), NULL);
      i += 2;
    } else if (!strcmp(op, "symlink")) {
      report(op, q, symlink(p, q), NULL);
      i += 2;
    } else if (!strcmp(op, "link")) {
      report(op, q, link(p, q), NULL);
      i += 2;
    } else if (!strcmp(op, "readlink")) {
      ssize_t n = readlink(p, buf, sizeof buf - 1);
      if (n >= 0) buf[n] = 0;
      report(op, p, n < 0 ? -1 : 0, n < 0 ? NULL : buf);
      i += 1;
    } else if (!strcmp(op, "stat")) {
      struct stat st;
      int rc = stat(p, &st);
      snprintf(buf, sizeof buf, "size=%lld dir=%d", (long long)st.st_size, S_ISDIR(st.st_mode) ? 1 : 0);
      report(op, p, rc, rc == 0 ? buf : NULL);
      i += 1;
    } else if (!strcmp(op, "list")) {
      DIR *d = opendir(p);
      if (!d) {
        report(op, p, -1, NULL);
      } else {
        buf[0] = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
          strncat(buf, e->d_name, sizeof buf - strlen(buf) - 2);
          strcat(buf, ",");
        }
        closedir(d);
        report(op, p, 0, buf);
      }
      i += 1;
    } else if (!strcmp(op, "touch")) {
      struct timeval times[2] = {{1, 0}, {1, 0}};
      report(op, p, utimes(p, times), NULL);
      i += 1;
    } else if (!strcmp(op, "truncate")) {
      report(op, p, truncate(p, 0), NULL);
      i += 1;
    } else if (!strcmp(op, "env")) {
      const char *value = getenv(p);
      printf("env %s: %s\n", p, value ? value : "(unset)");
      i += 1;
    } else if (!strcmp(op, "wait")) {
      while (read(0, buf, sizeof buf) > 0) {
      }
      printf("wait: done\n");
    } else {
      printf("unknown op %s\n", op);
      return 2;
    }
    fflush(stdout);
  }
  return 0;
}
