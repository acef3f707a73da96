/* weft tests: start and stop dnsmasq on a free port (see dnsmasq.h). */
#include "dnsmasq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define DNSMASQ "/usr/sbin/dnsmasq"
#define START_ATTEMPTS                                                         \
  20 /* a port can be taken between the check and dnsmasq's bind */
#define READY_POLLS 100 /* x 50 ms: dnsmasq starts in a few ms */

/* Binds a UDP socket to 127.0.0.1:0; returns the fd and the port. */
static int udp_bound(unsigned *port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int th_silent_udp(unsigned *port) { return udp_bound(port); }

/* A port free for UDP and for TCP on 127.0.0.1: dnsmasq binds both, and
 * other tests' TCP sockets draw from the same ephemeral range. */
static int free_port(unsigned *port) {
  int fd = udp_bound(port);
  if (fd < 0) return fd;
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)*port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = t < 0                                           ? -errno
            : bind(t, (struct sockaddr *)&a, sizeof a) != 0 ? -errno
                                                            : 0;
  if (t >= 0) close(t);
  close(fd);
  return err;
}

static int write_hosts(th_dnsmasq *d, const char *hosts) {
  snprintf(d->dir, sizeof d->dir, "/tmp/weft-dnsmasq-XXXXXX");
  if (mkdtemp(d->dir) == NULL) return -errno;
  snprintf(d->hosts, sizeof d->hosts, "%s/hosts", d->dir);
  FILE *f = fopen(d->hosts, "w");
  if (f == NULL) return -errno;
  /* the readiness name, this instance's own (wait_ready), at an address
   * (TEST-NET-2) that no reverse lookup of a test asks for */
  fprintf(f, "198.51.100.7 ready-%s.test\n", strrchr(d->dir, '-') + 1);
  fputs(hosts, f);
  return fclose(f) == 0 ? 0 : -EIO;
}

static pid_t spawn(const th_dnsmasq *d) {
  char port[32], hosts[128];
  snprintf(port, sizeof port, "--port=%u", d->port);
  snprintf(hosts, sizeof hosts, "--addn-hosts=%s", d->hosts);
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int null = open("/dev/null", O_RDWR);
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  const char *root = geteuid() == 0 ? "--user=root" : "--conf-file=/dev/null";
  execl(DNSMASQ, DNSMASQ, "--no-daemon", port, "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", hosts,
        "--local=/test/", "--local=/localhost/",
        "--pid-file=", "--conf-file=/dev/null", root, (char *)NULL);
  _exit(127);
}

/* Asks "ready-XXXXXX.test", a name only this instance's hosts file holds
 * (XXXXXX from its private directory), until an answer with an address
 * comes back, or dnsmasq exits (port taken: the caller retries), or
 * READY_POLLS run out. Any answer would not do: when two tests pick the
 * same free port, the dnsmasq that lost the bind is still starting while
 * the other one answers on the port, and the test would then talk to the
 * other test's server, until it stops (ECONNREFUSED). */
static int wait_ready(const th_dnsmasq *d) {
  unsigned char query[64] = {0x7e, 0x57, 0x01, 0x00, 0, 1};
  size_t len = 12;
  const char *tag = strrchr(d->dir, '-') + 1;
  char label[32];
  int n = snprintf(label, sizeof label, "ready-%s", tag);
  query[len++] = (unsigned char)n;
  memcpy(query + len, label, (size_t)n);
  len += (size_t)n;
  query[len++] = 4;
  memcpy(query + len, "test", 4);
  len += 4;
  static const unsigned char tail[] = {0, 0, 1, 0, 1}; /* root, A, IN */
  memcpy(query + len, tail, sizeof tail);
  len += sizeof tail;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)d->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = -ETIMEDOUT;
  for (int i = 0; i < READY_POLLS; i++) {
    if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
      err = -EADDRINUSE;
      break;
    }
    sendto(fd, query, len, 0, (struct sockaddr *)&a, sizeof a);
    struct pollfd p = {fd, POLLIN, 0};
    unsigned char reply[512];
    if (poll(&p, 1, 50) == 1 && recv(fd, reply, sizeof reply, 0) >= 12 &&
        reply[0] == query[0] && reply[1] == query[1] &&
        (reply[3] & 0x0f) == 0 && (reply[6] | reply[7]) != 0) {
      err = 0; /* NOERROR with an answer: our own dnsmasq */
      break;
    }
  }
  close(fd);
  return err;
}

int th_dnsmasq_start(th_dnsmasq *d, const char *hosts) {
  memset(d, 0, sizeof *d);
  d->pid = -1;
  if (access(DNSMASQ, X_OK) != 0) return -ENOENT;
  int err = write_hosts(d, hosts);
  for (int i = 0; err == 0 && i < START_ATTEMPTS; i++) {
    if ((err = free_port(&d->port)) == -EADDRINUSE) {
      err = 0; /* taken for TCP: another port */
      continue;
    }
    if (err != 0) break;
    if ((d->pid = spawn(d)) < 0) {
      err = -errno;
      break;
    }
    err = wait_ready(d);
    if (err == 0) break;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
    if (err != -EADDRINUSE) break;
    err = 0; /* retry on a new port */
  }
  if (err == 0 && d->pid < 0) err = -EADDRINUSE;
  if (err != 0)
    th_dnsmasq_stop(d);
  else
    snprintf(d->server, sizeof d->server, "127.0.0.1:%u", d->port);
  return err;
}

void th_dnsmasq_stop(th_dnsmasq *d) {
  if (d->pid > 0) {
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
  }
  if (d->hosts[0] != '\0') unlink(d->hosts);
  if (d->dir[0] != '\0') rmdir(d->dir);
  d->hosts[0] = d->dir[0] = '\0';
}
