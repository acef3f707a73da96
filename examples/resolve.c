/* resolve NAME... — prints each name's addresses like `getent ahosts`,
 * resolving all the names at once on one weft loop (c-ares underneath).
 *
 *   $ resolve localhost example.org
 *   127.0.0.1       STREAM localhost
 *   127.0.0.1       DGRAM
 *   127.0.0.1       RAW
 *   ...
 *
 * Answers are printed in the order of the arguments once every lookup has
 * finished. Exit status: 0, 1 if some name could not be resolved, 2 for a
 * usage error.
 * WEFT_DNS_SERVERS="127.0.0.1:5353" points the resolver at another server. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: resolve [--] NAME...\n"
    "  Resolves every NAME at once (c-ares) and prints its addresses like\n"
    "  `getent ahosts`. WEFT_DNS_SERVERS=ip:port sets the name server.\n";

typedef struct lookup {
  const char *name;
  int status;
  weft_addrinfo *res;
} lookup;

static void on_answer(int status, weft_addrinfo *res, void *arg) {
  lookup *l = arg;
  l->status = status;
  l->res = res;
}

static void print_lookup(const lookup *l) {
  if (l->status != 0) {
    fprintf(stderr, "resolve: %s: %s\n", l->name, weft_strerror(l->status));
    return;
  }
  static const char *const kinds[] = {"STREAM", "DGRAM", "RAW"};
  for (const weft_addrinfo *ai = l->res; ai != NULL; ai = ai->next) {
    char text[INET6_ADDRSTRLEN];
    const void *a =
        ai->family == AF_INET
            ? (const void *)&((struct sockaddr_in *)ai->addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)ai->addr)->sin6_addr;
    inet_ntop(ai->family, a, text, sizeof text);
    for (int k = 0; k < 3; k++)
      printf("%-15s %-6s %s\n", text, kinds[k],
             ai == l->res && k == 0 ? l->name : "");
  }
}

int main(int argc, char **argv) {
  argc = ex_operands(argc, argv, 1, usage);
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  const char *servers = getenv("WEFT_DNS_SERVERS");
  if (err == 0 && servers != NULL) err = weft_dns_set_servers(loop, servers);
  if (err != 0) {
    fprintf(stderr, "resolve: %s\n", weft_strerror(err));
    return 1;
  }
  lookup *lookups = calloc((size_t)argc - 1, sizeof *lookups);
  if (lookups == NULL) return 1;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  for (int i = 1; i < argc; i++) {
    lookup *l = &lookups[i - 1];
    l->name = argv[i];
    l->status = weft_getaddrinfo(loop, argv[i], NULL, &hints, on_answer, l);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  int failed = 0;
  for (int i = 0; i < argc - 1; i++) {
    print_lookup(&lookups[i]);
    failed |= lookups[i].status != 0;
    weft_freeaddrinfo(lookups[i].res);
  }
  free(lookups);
  weft_loop_free(loop);
  return failed ? 1 : 0;
}
