#!/usr/bin/env bash
# `make check-layers`: calls only go down. Reads every library object's
# defined and undefined symbols (nm) and fails when a file calls a function
# defined in a file of a higher rank. Files of one knot may call each other
# both ways; only the loop core has one. Usage: check-layers.sh OBJDIR
#
# The table: rank file [knot]. Ranks follow DESIGN.md's layers:
#   L0 alloc, error;  L1 the loop core (loop, handles, cross-thread posts,
#   timers, the backend) and signals;  L2 the pool (which knows no futures),
#   the future core, then what is built on it;  L3 io primitives, from
#   addresses up to tcp and pipes;  L4 composites and future forms.
set -euo pipefail
objdir=${1:?usage: check-layers.sh OBJDIR}
table=$(cat <<'TABLE'
00 core/alloc
00 core/error
10 core/loop        loopcore
10 core/handle      loopcore
10 core/xpost       loopcore
10 core/backend     loopcore
10 core/hooks       loopcore
10 core/debug       loopcore
10 timers/timer     loopcore
11 core/signal
20 core/pool
20 core/pool_clock
20 core/pool_control
21 promises/future
22 promises/then
22 promises/combinators
22 promises/timed
22 promises/sync
22 promises/queue
22 promises/threadsafe
22 promises/group
22 promises/scope
22 promises/shield
22 promises/wait
22 promises/thread
22 promises/signal_future
22 promises/fiber
22 promises/fiber_spawn
22 promises/fiber_stack
22 promises/fiber_switch
22 promises/fiber_ops
30 io/sockaddr
30 io/fs_ops
30 io/uring
30 io/poll
31 io/iostate
32 io/dns
31 io/fs
32 io/stream
32 io/stream_sendfile
32 io/stream_read
32 io/udp
32 io/udp_opt
32 io/dns_query
32 io/dns_hosts
33 io/tcp
33 io/pipe
33 io/tty
32 io/pipe_fds
32 io/watch
32 io/watch_tree
32 io/fs_poll
34 io/process
34 io/process_watch
34 io/process_clone
34 io/shm
34 io/shm_sync
40 promises/pool_future
40 io/fiber_stream
40 io/connect_host
40 io/process_run
40 io/procpool
40 io/procpool_job
40 io/procpool_map
40 io/procpool_reply
40 io/procpool_worker
41 io/loopgroup
41 io/loopgroup_call
42 io/fiber_io_ops
42 io/fiber_net
TABLE
)
declare -A rank knot def
while read -r r f k; do rank[$f]=$r; knot[$f]=${k:-}; done <<<"$table"

# objects whose source is gone (a file moved or was removed) are stale
# leftovers of an old build tree, not the library
objs=$(cd "$objdir" && find . -name '*.o' | sed 's|^\./||; s|\.o$||' | sort)
objs=$(for f in $objs; do if [ -f "$f.c" ]; then echo "$f"; fi; done)
bad=0
for f in $objs; do
  if [ -z "${rank[$f]:-}" ]; then
    echo "check-layers: $f is not in the layer table (scripts/check-layers.sh)"; bad=1; continue
  fi
  for s in $(nm --defined-only -g "$objdir/$f.o" | awk '$2 ~ /[TDBR]/ {print $3}'); do
    def[$s]=$f
  done
done
violations=0
for f in $objs; do
  [ -n "${rank[$f]:-}" ] || continue
  for s in $(nm -u "$objdir/$f.o" | awk '{print $2}'); do
    g=${def[$s]:-}
    [ -n "$g" ] && [ "$g" != "$f" ] || continue
    [ -n "${knot[$f]}" ] && [ "${knot[$f]}" = "${knot[$g]}" ] && continue
    if [ "${rank[$g]}" -gt "${rank[$f]}" ]; then
      echo "check-layers: $f (rank ${rank[$f]}) calls $s in $g (rank ${rank[$g]})"
      violations=$((violations + 1))
    fi
  done
done
n=$(wc -w <<<"$objs")
echo "check-layers: $n objects, $violations upward calls"
[ $bad -eq 0 ] && [ $violations -eq 0 ]
