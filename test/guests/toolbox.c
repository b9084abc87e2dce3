// A long-running container that is also a command: without arguments it prints "ready" and then
// echoes every line of stdin to stdout (forever, while stdin stays open; then it sleeps), so
// `kubectl attach` has something to see and to talk to. With arguments it runs one command, for
// `kubectl exec`:
//   echo WORDS...   print the words
//   fail N          print "failing with N" to stderr and exit N
//   env NAME        print $NAME
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "echo") == 0) {
      for (int i = 2; i < argc; i++) printf(i + 1 < argc ? "%s " : "%s\n", argv[i]);
      return 0;
    }
    if (strcmp(argv[1], "fail") == 0 && argc > 2) {
      fprintf(stderr, "failing with %s\n", argv[2]);
      return atoi(argv[2]);
    }
    if (strcmp(argv[1], "env") == 0 && argc > 2) {
      const char *value = getenv(argv[2]);
      printf("%s\n", value ? value : "");
      return value ? 0 : 1;
    }
    fprintf(stderr, "unknown command %s\n", argv[1]);
    return 127;
  }
  printf("ready\n");
  fflush(stdout);
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    printf("got: %s", line);
    fflush(stdout);
  }
  for (;;) sleep(60);
}
