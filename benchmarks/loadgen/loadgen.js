#!/usr/bin/env node
// A WebSocket / EventSource load generator on raw `net` sockets (no npm package).
//
//   node loadgen.js echo    --port P [--conns 50] [--size 32] [--text] [--inflight 1]
//                           [--rounds] [--warmup 0.5] [--duration 3]
//   node loadgen.js connect --port P [--conns 16] [--warmup 0.5] [--duration 3]
//   node loadgen.js idle    --port P [--conns 5000] [--parallel 64] [--hold 60]
//   node loadgen.js sse     --port P [--conns 100] [--warmup 0.5] [--duration 3]
//
// Protocol with the orchestrator (benchmarks/run.py), one line each on stdout:
//   START            the measured window begins (after --warmup seconds of load)
//   END              the measured window ends (--duration seconds later)
//   RESULT {json}    counts of the window, latency percentiles, generator CPU %
// idle prints "READY {json}" once every connection is open and then waits for a
// line on stdin (or --hold seconds) before closing them all and exiting.
//
// Everything is bounded: the process exits by itself after warmup + duration
// (+ 2 s of grace to close), or after --hold seconds in idle mode.
//
// echo keeps --inflight messages in flight per connection (default 1, a closed loop
// of one round trip at a time); each echo received sends the next message. With
// more than one, latency is measured from the latest send, so it reads low.
// --rounds paces in lock-step instead: every connection sends one message, and
// the next round starts when all of them have their echo (the server sees bursts
// of 50 ready sockets, which favours event loops that batch).
//
// Client frames are masked with one fixed key and are built once per run: the
// generator does no per-message masking, so its cost per round trip is a
// write() of a prebuilt Buffer plus a header parse of the echo.

'use strict';
const net = require('net');
const { performance } = require('perf_hooks');

function parseArgs(argv) {
  const args = { mode: argv[0] };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (key === 'text' || key === 'rounds') { args[key] = true; continue; }
    args[key] = argv[++i];
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const HOST = args.host || '127.0.0.1';
const PORT = Number(args.port);
const WARMUP = Number(args.warmup ?? 0.5) * 1000;
const DURATION = Number(args.duration ?? 3) * 1000;
// Extra loopback source addresses widen the ephemeral port space for the
// connect test (every 127.0.0.0/8 address reaches lo on Linux).
const SOURCES = Number(args.sources ?? 4);
if (!PORT) { console.error('--port is required'); process.exit(2); }

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function handshake(path = '/') {
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
}

function clientFrame(opcode, payload) {
  const n = payload.length;
  let header;
  if (n <= 125) { header = Buffer.from([0x80 | opcode, 0x80 | n]); }
  else if (n <= 0xffff) { header = Buffer.alloc(4); header[0] = 0x80 | opcode; header[1] = 0xfe; header.writeUInt16BE(n, 2); }
  else { header = Buffer.alloc(10); header[0] = 0x80 | opcode; header[1] = 0xff; header.writeBigUInt64BE(BigInt(n), 2); }
  const masked = Buffer.alloc(n);
  for (let i = 0; i < n; i++) masked[i] = payload[i] ^ MASK[i & 3];
  return Buffer.concat([header, MASK, masked]);
}

const CLOSE_FRAME = clientFrame(0x8, Buffer.from([0x03, 0xe8]));

function cpuStart() { return { cpu: process.cpuUsage(), t: performance.now() }; }
function cpuPercent(s) {
  const d = process.cpuUsage(s.cpu);
  const wall = (performance.now() - s.t) * 1000;
  return wall > 0 ? (100 * (d.user + d.system)) / wall : 0;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

// A latency recorder with a fixed memory bound (reservoir of the first N samples
// of the window, then every k-th): enough for p50/p99 of a few seconds.
class Latencies {
  constructor(cap = 200000) { this.buf = new Float64Array(cap); this.n = 0; this.seen = 0; }
  add(ms) {
    this.seen++;
    if (this.n < this.buf.length) this.buf[this.n++] = ms;
    else this.buf[this.seen % this.buf.length] = ms; // cheap, roughly uniform overwrite
  }
  summary() {
    const s = Array.from(this.buf.subarray(0, this.n)).sort((a, b) => a - b);
    return { p50_ms: percentile(s, 0.5), p99_ms: percentile(s, 0.99) };
  }
}

// Runs the warm-up then the window; `counter()` returns the running total.
function timeline(counter, onEnd) {
  let startCount = 0, cpu = null, t0 = 0;
  const state = { measuring: false, done: false };
  setTimeout(() => {
    startCount = counter(); cpu = cpuStart(); t0 = performance.now();
    state.measuring = true;
    process.stdout.write('START\n');
    setTimeout(() => {
      const count = counter() - startCount;
      const elapsed = (performance.now() - t0) / 1000;
      const genCpu = cpuPercent(cpu);
      state.measuring = false; state.done = true;
      process.stdout.write('END\n');
      onEnd({ count, elapsed, rate: count / elapsed, gen_cpu_pct: genCpu });
    }, DURATION);
  }, WARMUP);
  return state;
}

function finish(result, sockets) {
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n');
  for (const s of sockets) {
    try { if (s.wsOpen) s.write(CLOSE_FRAME); s.end(); } catch (e) { /* closing anyway */ }
  }
  setTimeout(() => { for (const s of sockets) s.destroy(); process.exit(0); }, 300).unref();
  setTimeout(() => process.exit(0), 2000);
}

// Reads the HTTP response head; calls onHead(statusLine, rest) once.
function readHead(sock, onHead, onData) {
  let head = Buffer.alloc(0);
  let done = false;
  sock.on('data', (chunk) => {
    if (done) { onData(chunk); return; }
    head = head.length ? Buffer.concat([head, chunk]) : chunk;
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) { if (head.length > 65536) sock.destroy(); return; }
    done = true;
    const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    const rest = head.subarray(end + 4);
    onHead(status, rest);
  });
}

// ----------------------------------------------------------------- echo

function echo() {
  const conns = Number(args.conns ?? 50);
  const size = Number(args.size ?? 32);
  const inflight = Math.max(1, Number(args.inflight ?? 1));
  const rounds = !!args.rounds;
  let waiting = 0; // rounds: echoes still due in this round
  const payload = Buffer.alloc(size);
  if (args.text) payload.fill(0x61); // 'a': ASCII text
  else for (let i = 0; i < size; i++) payload[i] = (i * 131 + 7) & 0xff;
  const frame = clientFrame(args.text ? 0x1 : 0x2, payload);
  const hs = handshake('/');
  const sockets = [];
  let total = 0, opened = 0, failed = 0;
  const lat = new Latencies();
  let state = null;
  const perConn = new Float64Array(conns); // messages per connection, for fairness
  let perConnStart = null;

  function start(sock, index) {
    // Parser of server frames: counts whole messages, ignores their bytes.
    let pending = 0;          // payload bytes of the current frame still to skip
    let hdr = null;           // a partial header carried between chunks
    let fin = 0, opcode = 0;
    let sentAt = 0;
    function send() { sentAt = performance.now(); sock.write(frame); }
    function onFrameDone() {
      if (opcode === 0x9) { return; } // ping: ignored (runs are shorter than keep-alives)
      if (opcode >= 0x8) { if (opcode === 0x8) sock.wsOpen = false; return; }
      if (!fin) return;
      total++;
      perConn[index]++;
      if (state && state.measuring) lat.add(performance.now() - sentAt);
      if (state && state.done) return; // stop sending after the window
      if (!rounds) { send(); return; }
      if (--waiting === 0) sendRound();
    }
    function onData(chunk) {
      let buf = hdr ? Buffer.concat([hdr, chunk]) : chunk;
      hdr = null;
      let pos = 0;
      const n = buf.length;
      while (pos < n) {
        if (pending > 0) {
          const take = Math.min(pending, n - pos);
          pending -= take; pos += take;
          if (pending === 0) onFrameDone();
          continue;
        }
        if (n - pos < 2) { hdr = buf.subarray(pos); return; }
        const b0 = buf[pos], b1 = buf[pos + 1];
        let len = b1 & 0x7f, h = 2;
        if (len === 126) { if (n - pos < 4) { hdr = buf.subarray(pos); return; } len = buf.readUInt16BE(pos + 2); h = 4; }
        else if (len === 127) { if (n - pos < 10) { hdr = buf.subarray(pos); return; } len = Number(buf.readBigUInt64BE(pos + 2)); h = 10; }
        if (b1 & 0x80) h += 4; // a masking server (the floor echoes our frames verbatim)
        if (n - pos < h) { hdr = buf.subarray(pos); return; }
        fin = b0 & 0x80; opcode = b0 & 0x0f;
        pos += h;
        pending = len;
        if (len === 0) onFrameDone();
      }
    }
    return { send, onData };
  }

  for (let i = 0; i < conns; i++) {
    const sock = net.connect({ host: HOST, port: PORT });
    sock.setNoDelay(true);
    sockets.push(sock);
    let handler = null;
    sock.on('connect', () => sock.write(hs));
    sock.on('error', () => {});
    sock.on('close', () => { sock.wsOpen = false; });
    readHead(sock, (status, rest) => {
      if (!status.includes(' 101')) { failed++; console.error(`handshake failed: ${status}`); sock.destroy(); return; }
      sock.wsOpen = true;
      handler = start(sock, i);
      if (rest.length) handler.onData(rest);
      opened++;
      if (opened + failed === conns) begin();
    }, (chunk) => handler.onData(chunk));
    sock.handler = () => handler;
  }

  function sendRound() {
    for (const s of sockets) if (s.wsOpen) { waiting++; s.handler().send(); }
  }

  function begin() {
    if (opened === 0) { finish({ error: 'no connection opened', failed }, sockets); return; }
    state = timeline(() => {
      if (!perConnStart) perConnStart = Float64Array.from(perConn);
      return total;
    }, (r) => {
      const per = Array.from(perConn, (c, k) => c - perConnStart[k]).sort((a, b) => a - b);
      Object.assign(r, { conns: opened, failed, size, text: !!args.text, inflight, rounds }, lat.summary());
      r.total = total; // every echo since the first message, warm-up included
      r.per_conn_min = per[0]; r.per_conn_median = percentile(per, 0.5); r.per_conn_max = per[per.length - 1];
      finish(r, sockets);
    });
    if (rounds) { sendRound(); return; }
    for (const s of sockets) if (s.wsOpen) for (let k = 0; k < inflight; k++) s.handler().send();
  }
  setTimeout(() => { if (!state) { console.error(`only ${opened}/${conns} connections opened`); process.exit(1); } }, 15000).unref();
}

// -------------------------------------------------------------- connect

function connect() {
  const parallel = Number(args.conns ?? 16);
  const hs = handshake('/');
  let completed = 0, failed = 0, seq = 0;
  const lat = new Latencies();
  let state = null;
  const live = new Set();

  function one() {
    if (state && state.done) return;
    const t0 = performance.now();
    const localAddress = `127.0.0.${1 + (seq++ % SOURCES)}`;
    const sock = net.connect({ host: HOST, port: PORT, localAddress });
    sock.setNoDelay(true);
    live.add(sock);
    let upgraded = false, ended = false;
    function next() {
      if (ended) return;
      ended = true; live.delete(sock); sock.destroy();
      setImmediate(one);
    }
    sock.on('connect', () => sock.write(hs));
    sock.on('error', () => { if (!upgraded) failed++; next(); });
    sock.on('end', next);
    sock.on('close', next);
    readHead(sock, (status) => {
      if (!status.includes(' 101')) { failed++; next(); return; }
      upgraded = true;
      completed++;
      if (state && state.measuring) lat.add(performance.now() - t0);
      sock.write(CLOSE_FRAME); // the server answers with its close frame
    }, next); // the server's close frame: the cycle is done and the client closes the TCP
    // connection itself (flask-sock on gevent never closes it from its side).
  }
  for (let i = 0; i < parallel; i++) one();
  state = timeline(() => completed, (r) => {
    process.stdout.write('RESULT ' + JSON.stringify(Object.assign(r, { parallel, failed }, lat.summary())) + '\n');
    setTimeout(() => { for (const s of live) s.destroy(); process.exit(0); }, 500);
  });
}

// ----------------------------------------------------------------- idle

function idle() {
  const total = Number(args.conns ?? 5000);
  const parallel = Number(args.parallel ?? 64);
  const hold = Number(args.hold ?? 60) * 1000;
  const hs = handshake('/');
  const sockets = [];
  let launched = 0, opened = 0, failed = 0;
  const t0 = performance.now();
  let ready = false;

  function one() {
    if (launched >= total) return;
    launched++;
    const sock = net.connect({ host: HOST, port: PORT, localAddress: `127.0.0.${1 + (launched % SOURCES)}` });
    sockets.push(sock);
    let settled = false;
    sock.setTimeout(10000, () => sock.destroy()); // a handshake that never completes fails
    function settle(ok) {
      if (settled) return;
      settled = true;
      sock.setTimeout(0); // open connections then stay idle for as long as needed
      if (ok) opened++; else failed++;
      if (opened + failed === total) report();
      else one();
    }
    sock.on('connect', () => sock.write(hs));
    sock.on('error', () => settle(false));
    sock.on('close', () => { sock.wsOpen = false; settle(false); });
    readHead(sock, (status) => {
      if (status.includes(' 101')) { sock.wsOpen = true; settle(true); } else { settle(false); }
    }, () => { /* pings from servers with keep-alive: ignored */ });
  }
  function report() {
    if (ready) return;
    ready = true;
    const elapsed = (performance.now() - t0) / 1000;
    process.stdout.write('READY ' + JSON.stringify({ opened, failed, elapsed }) + '\n');
  }
  for (let i = 0; i < parallel; i++) one();
  const stop = () => {
    let alive = 0;
    for (const s of sockets) if (s.wsOpen) alive++;
    process.stdout.write('RESULT ' + JSON.stringify({ opened, failed, alive_at_end: alive }) + '\n');
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  process.stdin.on('data', stop);
  setTimeout(stop, hold);
}

// ------------------------------------------------------------------ sse

function sse() {
  const conns = Number(args.conns ?? 100);
  const req = Buffer.from(`GET /events HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nAccept: text/event-stream\r\n\r\n`);
  const counts = new Float64Array(conns);
  const sockets = [];
  let opened = 0, failed = 0, total = 0, state = null;
  let windowStart = null;
  const CR = 0x0d, LF = 0x0a;

  for (let i = 0; i < conns; i++) {
    const sock = net.connect({ host: HOST, port: PORT });
    sockets.push(sock);
    // An event ends with "\r\n\r\n" (faye_sync and the bare generator write CRLF).
    // The last three bytes carry over, so an end split across reads still counts.
    let tail = 0; // last bytes as a small shift register: (b[-3] << 16) | (b[-2] << 8) | b[-1]
    function onData(chunk) {
      let t = tail, c = 0;
      for (let k = 0; k < chunk.length; k++) {
        const b = chunk[k];
        if (b === LF && t === 0x0d0a0d) c++;
        t = ((t << 8) | b) & 0xffffff;
      }
      tail = t;
      counts[i] += c;
      total += c;
    }
    sock.on('connect', () => sock.write(req));
    sock.on('error', () => {});
    readHead(sock, (status, rest) => {
      if (!status.includes(' 200')) { failed++; console.error(`sse: ${status}`); sock.destroy(); }
      else { opened++; if (rest.length) onData(rest); }
      if (opened + failed === conns) begin();
    }, onData);
  }
  function begin() {
    state = timeline(() => {
      if (!windowStart) windowStart = Float64Array.from(counts);
      return total;
    }, (r) => {
      const per = Array.from(counts, (c, i) => c - windowStart[i]).sort((a, b) => a - b);
      const starved = per.filter((c) => c === 0).length;
      r.conns = opened; r.failed = failed;
      r.per_client_min = per[0]; r.per_client_median = percentile(per, 0.5); r.per_client_max = per[per.length - 1];
      r.starved_clients = starved;
      finish(r, sockets);
    });
  }
  setTimeout(() => { if (!state) { console.error(`sse: only ${opened}/${conns} streams opened`); process.exit(1); } }, 15000).unref();
}

const modes = { echo, connect, idle, sse };
if (!modes[args.mode]) { console.error(`mode must be one of ${Object.keys(modes).join(', ')}`); process.exit(2); }
// A hard bound on every mode except idle (which has --hold).
if (args.mode !== 'idle') setTimeout(() => { console.error('loadgen: hard time limit'); process.exit(3); }, WARMUP + DURATION + 20000).unref();
modes[args.mode]();
