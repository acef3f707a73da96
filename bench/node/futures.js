// Node.js twins of bench/bench_futures.c: the same workloads with native
// promises, run once each; one JSON line per workload on stdout, in the
// bench harness's format, after one unreported warm-up pass. Usage: node futures.js [workload] [n]
//   chain   a chain of n .then() on a resolved promise, built then drained
//   create  n x (new Promise + one .then + resolve), in batches of 1000
//   all     Promise.all over n promises resolved after the call
//   queue   n put/get round trips between two async tasks through two
//           bounded queues (capacity 1) written the usual way in JS
'use strict';

const now = () => Number(process.hrtime.bigint()) / 1e9;
let warm = false; // the first (warm-up) pass of each workload is not reported
const emit = (bench, value) => warm &&
  console.log(JSON.stringify({ bench, impl: 'node', value, unit: 'ops/s',
    better: 'higher', runs: 1 }));
const check = (cond, what) => {
  if (!cond) { console.error(`futures.js: FAILED: ${what}`); process.exit(1); }
};

async function chain(n) {
  const t0 = now();
  let p = Promise.resolve(0);
  for (let i = 0; i < n; i++) p = p.then((v) => v + 1);
  const v = await p;
  const t = now() - t0;
  check(v === n, `chain ended at ${v}`);
  emit('futures_then_chain_1m', n / t);
}

async function create(n) {
  let ran = 0;
  const cb = () => { ran++; };
  const t0 = now();
  for (let done = 0; done < n; done += 1000) {
    for (let i = 0; i < 1000; i++) {
      let resolve;
      const p = new Promise((r) => { resolve = r; });
      p.then(cb);
      resolve(i);
    }
    await null; // drain the batch's reactions
  }
  const t = now() - t0;
  check(ran === n, `create ran ${ran}`);
  emit('futures_create_resolve_then_1m', n / t);
}

async function all(n) {
  const resolvers = new Array(n);
  const ps = new Array(n);
  const t0 = now();
  for (let i = 0; i < n; i++) ps[i] = new Promise((r) => { resolvers[i] = r; });
  const agg = Promise.all(ps);
  for (let i = 0; i < n; i++) resolvers[i](i);
  const vs = await agg;
  const t = now() - t0;
  check(vs.length === n && vs[n - 1] === n - 1, 'all values');
  emit('futures_all_100k', n / t);
}

class Queue { // asyncio.Queue's shape: waiters wait while empty / full
  constructor(cap) { this.cap = cap; this.items = []; this.getters = []; this.putters = []; }
  put(x) {
    if (this.getters.length) { this.getters.shift()(x); return Promise.resolve(); }
    if (this.items.length < this.cap) { this.items.push(x); return Promise.resolve(); }
    return new Promise((r) => this.putters.push([x, r]));
  }
  get() {
    if (this.items.length) {
      const x = this.items.shift();
      if (this.putters.length) { const [y, r] = this.putters.shift(); this.items.push(y); r(); }
      return Promise.resolve(x);
    }
    return new Promise((r) => this.getters.push(r));
  }
}

async function queue(n) {
  const ping = new Queue(1), pong = new Queue(1);
  const t0 = now();
  const echo = (async () => {
    for (let i = 0; i < n; i++) await pong.put(await ping.get());
  })();
  let sum = 0;
  for (let i = 0; i < n; i++) { await ping.put(i); sum += await pong.get(); }
  await echo;
  const t = now() - t0;
  check(sum === (n * (n - 1)) / 2, 'queue sum');
  emit('futures_queue_pingpong', n / t);
}

const works = { chain: [chain, 1000000], create: [create, 1000000],
  all: [all, 100000], queue: [queue, 100000] };

(async () => {
  const which = process.argv[2];
  for (const [name, [fn, n]] of Object.entries(works)) {
    if (which && which !== name) continue;
    const count = process.argv[3] ? Number(process.argv[3]) : n;
    warm = false;
    await fn(count); // untimed warm-up, as the weft side does
    warm = true;
    await fn(count);
  }
})();
