// Node.js peers of bench_fibers (await, spawn, idle memory) and the echo
// server of the fibers echo rows. One run per invocation, one JSON line on
// stdout in the bench harness's format, after an unreported warm-up pass
// (a warm JIT, as weft gets a warm loop).
// Usage: node peers.js await|spawn|mem N     node peers.js echo  (prints the port)
'use strict';
const net = require('net');

const now = () => Number(process.hrtime.bigint()) / 1e9;
const emit = (bench, value, unit, better) =>
  console.log(JSON.stringify({ bench, impl: 'node', value, unit, better, runs: 1 }));
const check = (cond, what) => {
  if (!cond) { console.error(`peers.js: FAILED: ${what}`); process.exit(1); }
};

// await of an already-resolved value, n times in one async function.
async function awaitSettled(n) {
  const p = Promise.resolve(1);
  let sum = 0;
  const t0 = now();
  for (let i = 0; i < n; i++) sum += await p;
  const t = now() - t0;
  check(sum === n, `await sum ${sum}`);
  return n / t;
}

// n async functions started and finished, awaited in batches of 1000
// (Promise.all), the usual way to run many of them.
async function spawn(n) {
  let ran = 0;
  const body = async (i) => { ran++; return i; };
  const batch = new Array(1000);
  const t0 = now();
  for (let done = 0; done < n; done += 1000) {
    for (let i = 0; i < 1000; i++) batch[i] = body(i);
    await Promise.all(batch);
  }
  const t = now() - t0;
  check(ran === n, `spawn ran ${ran}`);
  return n / t;
}

// n async functions left pending on one promise: RSS delta per function.
async function mem(n) {
  global.gc && global.gc();
  const rss0 = process.memoryUsage().rss;
  let release;
  const gate = new Promise((r) => { release = r; });
  let woken = 0;
  const body = async () => { await gate; woken++; };
  const all = new Array(n);
  for (let i = 0; i < n; i++) all[i] = body();
  await null;
  global.gc && global.gc();
  const per = (process.memoryUsage().rss - rss0) / n;
  release();
  await Promise.all(all);
  check(woken === n, `woken ${woken}`);
  return per;
}

function echo() {
  const srv = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  srv.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    console.log(srv.address().port);
  });
}

async function main() {
  const [what, nArg] = process.argv.slice(2);
  const n = Number(nArg || 1000000);
  if (what === 'echo') return echo();
  if (what === 'await') { await awaitSettled(n); emit('fibers_await_settled_1m', await awaitSettled(n), 'awaits/s', 'higher'); return; }
  if (what === 'spawn') { await spawn(n); emit('fibers_spawn_1m', await spawn(n), 'spawns/s', 'higher'); return; }
  if (what === 'mem') { emit('fibers_idle_mem_100k', await mem(n), 'B', 'lower'); return; }
  console.error('usage: node peers.js await|spawn|mem N | echo');
  process.exit(2);
}
main();
