/* weft — the per-loop hosts-file table: /etc/hosts (or the file given to
 * weft_dns_set_hosts_file()) parsed once into a hash table, so that a
 * forward lookup costs no file read. c-ares 1.18 re-reads the file on every
 * lookup (fopen, fgets, fclose: 5 system calls); here a stat() at most once
 * per WEFT_DNS_HOSTS_RECHECK_MS of loop time tells whether to parse again.
 *
 * Lines are split the way c-ares 1.18's ares__readaddrinfo splits them
 * ('#' starts a comment; address, canonical name, aliases, separated by
 * isspace() characters), addresses are parsed with c-ares' own
 * ares_inet_pton, and names compare with strcasecmp: so a name gets the
 * same addresses, in the same (file) order, as c-ares would give it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/dns_internal.h"

#define NO_REC UINT32_MAX

static bool is_space(char c) { return isspace((unsigned char)c) != 0; }

/* FNV-1a over the tolower()ed bytes: equal under strcasecmp, equal hash. */
static uint32_t name_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint32_t)tolower((unsigned char)*s)) * 16777619u;
  return h;
}

static const char *hosts_path(const weft__dns_hosts *h) {
  return h->path != NULL ? h->path : "/etc/hosts";
}

static void table_free(weft__dns_hosts *h) {
  weft__free(h->buf);
  weft__free(h->recs);
  weft__free(h->buckets);
  h->buf = NULL;
  h->recs = NULL;
  h->buckets = NULL;
  h->n_recs = h->n_buckets = 0;
}

void weft__dns_hosts_free(weft__dns_hosts *h) {
  table_free(h);
  weft__free(h->path);
  h->path = NULL;
  h->state = WEFT__HOSTS_NONE;
}

/* ---- parsing ------------------------------------------------------------- */

static char *skip_space(char *p, const char *end) {
  while (p < end && is_space(*p))
    p++;
  return p;
}

static char *skip_token(char *p, const char *end) {
  while (p < end && !is_space(*p))
    p++;
  return p;
}

/* The address family and bytes of `tok`, through c-ares' own parser (it
 * takes forms inet_pton(3) refuses, and so must we); 0 if none. */
static int parse_addr(const char *tok, size_t len, uint8_t bytes[16]) {
  char s[256];
  if (len >= sizeof s) return 0;
  memcpy(s, tok, len);
  s[len] = '\0';
  if (ares_inet_pton(AF_INET, s, bytes) == 1) return AF_INET;
  if (ares_inet_pton(AF_INET6, s, bytes) == 1) return AF_INET6;
  return 0;
}

/* Parses the line [line, end) as ares__readaddrinfo does: text from a NUL
 * or '#' on is ignored; an address, then names. With `recs` NULL it only
 * counts the names; otherwise it fills one record per name and
 * NUL-terminates each name in place. Returns the number of names, 0 for a
 * line without a name or with an address c-ares could not parse. */
static size_t parse_line(char *line, char *end, uint32_t line_no,
                         const char *base, weft__hosts_rec *recs) {
  char *cut = memchr(line, '\0', (size_t)(end - line));
  if (cut != NULL) end = cut;
  if ((cut = memchr(line, '#', (size_t)(end - line))) != NULL) end = cut;
  char *addr = skip_space(line, end), *p = skip_token(addr, end);
  uint8_t bytes[16];
  int family = parse_addr(addr, (size_t)(p - addr), bytes);
  if (family == 0) return 0;
  size_t n = 0;
  for (p = skip_space(p, end); p < end; p = skip_space(p, end), n++) {
    char *name = p;
    p = skip_token(p, end);
    if (recs == NULL) continue;
    bool last = p == end;
    *p = '\0'; /* end is inside the buffer: it has one spare byte */
    weft__hosts_rec *r = &recs[n];
    r->hash = name_hash(name);
    r->name = (uint32_t)(name - base);
    r->line = line_no;
    r->next = NO_REC;
    r->family = (uint8_t)family;
    memcpy(r->addr, bytes, 16);
    if (last) {
      n++;
      break;
    }
    p++;
  }
  return n;
}

/* Walks the buffer's lines, counting names (recs NULL) or filling recs.
 * Returns the number of names, or SIZE_MAX past WEFT_DNS_HOSTS_MAX_NAMES. */
static size_t parse_all(char *buf, size_t len, weft__hosts_rec *recs) {
  size_t n = 0;
  uint32_t line_no = 0;
  for (char *line = buf; line < buf + len; line_no++) {
    char *nl = memchr(line, '\n', (size_t)(buf + len - line));
    char *end = nl != NULL ? nl : buf + len;
    n += parse_line(line, end, line_no, buf, recs ? recs + n : NULL);
    if (n > WEFT_DNS_HOSTS_MAX_NAMES) return SIZE_MAX;
    line = end + 1;
  }
  return n;
}

/* Chains each record into its bucket, in file order (built back to front,
 * each record pushed at its bucket's head). */
static void index_table(weft__dns_hosts *h) {
  for (size_t i = 0; i < h->n_buckets; i++)
    h->buckets[i] = NO_REC;
  for (size_t i = h->n_recs; i-- > 0;) {
    uint32_t *head = &h->buckets[h->recs[i].hash & (h->n_buckets - 1)];
    h->recs[i].next = *head;
    *head = (uint32_t)i;
  }
}

/* Builds the table from buf (len bytes, one spare), which it then owns.
 * 0, WEFT__HOSTS_TOO_BIG, or -ENOMEM (buf freed). */
static int table_build(weft__dns_hosts *h, char *buf, size_t len) {
  size_t n = parse_all(buf, len, NULL);
  if (n == SIZE_MAX) {
    weft__free(buf);
    return WEFT__HOSTS_TOO_BIG;
  }
  size_t nb = 16;
  while (nb < 2 * n)
    nb *= 2;
  h->recs = n ? weft__calloc(n, sizeof *h->recs) : NULL;
  h->buckets = weft__calloc(nb, sizeof *h->buckets);
  h->buf = buf;
  if ((n && h->recs == NULL) || h->buckets == NULL) {
    table_free(h);
    return -ENOMEM;
  }
  h->n_recs = parse_all(buf, len, h->recs);
  h->n_buckets = nb;
  index_table(h);
  return 0;
}

/* ---- loading and re-validation ------------------------------------------ */

static void sig_of(const struct stat *s, weft__hosts_sig *g) {
  memset(g, 0, sizeof *g);
  g->dev = s->st_dev;
  g->ino = s->st_ino;
  g->size = s->st_size;
  g->mtime = s->st_mtim;
  g->ctime = s->st_ctim;
}

static bool sig_eq(const weft__hosts_sig *a, const weft__hosts_sig *b) {
  return a->err == b->err && a->dev == b->dev && a->ino == b->ino &&
         a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec &&
         a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void stat_sig(const char *path, weft__hosts_sig *g) {
  struct stat s;
  if (stat(path, &s) != 0) {
    memset(g, 0, sizeof *g);
    g->err = errno;
  } else {
    sig_of(&s, g);
  }
}

/* Reads the open file (whose fstat gave `g`) whole; NULL with *err set. */
static char *read_all(int fd, const weft__hosts_sig *g, size_t *len, int *err) {
  size_t cap = (size_t)g->size;
  char *buf = weft__malloc(cap + 1);
  if (buf == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  size_t got = 0;
  while (got < cap) {
    ssize_t r = read(fd, buf + got, cap - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) break; /* shrank meanwhile: the next check re-reads */
      weft__free(buf);
      *err = WEFT__HOSTS_ABSENT; /* as c-ares: unreadable, DNS only */
      return NULL;
    }
    got += (size_t)r;
  }
  buf[got] = '\0';
  *len = got;
  return buf;
}

/* (Re)loads the table; the signature is the opened file's own, so a change
 * made while it is read shows at the next check. 0 or -ENOMEM (the table
 * is then unloaded and the next lookup tries again). */
static int hosts_load(weft__dns_hosts *h, const weft__hosts_sig *seen) {
  table_free(h);
  h->state = WEFT__HOSTS_NONE;
  h->sig = *seen;
  int fd = seen->err ? -1 : open(hosts_path(h), O_RDONLY | O_CLOEXEC);
  struct stat s;
  if (fd < 0 || fstat(fd, &s) != 0) {
    if (fd >= 0) close(fd);
    h->state = WEFT__HOSTS_ABSENT; /* missing or unreadable: c-ares asks DNS */
    return 0;
  }
  sig_of(&s, &h->sig);
  int st = WEFT__HOSTS_TOO_BIG;
  size_t len = 0;
  char *buf = NULL;
  if (s.st_size <= WEFT_DNS_HOSTS_MAX_BYTES &&
      (buf = read_all(fd, &h->sig, &len, &st)) != NULL)
    st = table_build(h, buf, len);
  close(fd);
  if (st == -ENOMEM) {
    memset(&h->sig, 0, sizeof h->sig);
    return -ENOMEM;
  }
  h->state = st == 0 ? WEFT__HOSTS_LOADED : st;
  return 0;
}

int weft__dns_hosts_refresh(weft__dns_hosts *h, uint64_t now) {
  if (h->state != WEFT__HOSTS_NONE &&
      now - h->checked_at < WEFT_DNS_HOSTS_RECHECK_MS)
    return 0;
  weft__hosts_sig seen;
  stat_sig(hosts_path(h), &seen);
  h->checked_at = now;
  if (h->state != WEFT__HOSTS_NONE && sig_eq(&seen, &h->sig)) return 0;
  return hosts_load(h, &seen);
}

int weft__dns_hosts_set_path(weft__dns_hosts *h, const char *path) {
  char *copy = NULL;
  if (strcmp(path, "/etc/hosts") != 0 && (copy = weft__strdup(path)) == NULL)
    return -ENOMEM;
  weft__dns_hosts_free(h);
  h->path = copy;
  return 0;
}

/* ---- lookups ------------------------------------------------------------- */

size_t weft__dns_hosts_find(const weft__dns_hosts *h, const char *name,
                            int family, weft__hosts_visit visit, void *arg) {
  if (h->state != WEFT__HOSTS_LOADED || h->n_recs == 0) return 0;
  uint32_t hash = name_hash(name), last_line = NO_REC;
  size_t n = 0;
  for (uint32_t i = h->buckets[hash & (h->n_buckets - 1)]; i != NO_REC;
       i = h->recs[i].next) {
    const weft__hosts_rec *r = &h->recs[i];
    /* a line naming the name twice counts once, as in c-ares */
    if (r->hash != hash || r->line == last_line ||
        (family != AF_UNSPEC && family != r->family) ||
        strcasecmp(h->buf + r->name, name) != 0)
      continue;
    last_line = r->line;
    if (visit != NULL) visit(arg, r->family, r->addr);
    n++;
  }
  return n;
}
