// For each argument: a directory is listed, a file is printed as "PATH: CONTENT".
// "--write PATH TEXT" writes TEXT to PATH instead and reports success or the error.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int print_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    printf("%s: error: %s\n", path, strerror(errno));
    return 1;
  }
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  printf("%s: %s\n", path, buf);
  return 0;
}

static int list_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return print_file(path);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] != '.') printf("%s/%s\n", path, e->d_name);
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  int failures = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--write") == 0 && i + 2 < argc) {
      FILE *f = fopen(argv[i + 1], "w");
      if (!f || fputs(argv[i + 2], f) < 0 || fclose(f) != 0) {
        printf("%s: write error: %s\n", argv[i + 1], strerror(errno));
        failures++;
      } else {
        printf("%s: written\n", argv[i + 1]);
      }
      i += 2;
    } else {
      failures += list_dir(argv[i]);
    }
  }
  return failures ? 1 : 0;
}
