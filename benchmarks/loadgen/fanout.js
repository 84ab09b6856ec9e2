#!/usr/bin/env node
// Fan-out subscribers on raw `net` sockets (no npm package), for benchmarks/fanout.py.
//
//   node fanout.js --kind faye     --port P --ws 1000 --sse 1000 --tag T --since ID
//   node fanout.js --kind socketio --port P --ws 2000 --tag T
//   [--warmup 2] [--duration 10] [--churn 0.1] [--gap 0.5] [--end-timeout 20]
//
// faye: the chat demo's /chat?name= WebSockets (JSON {"id","name","text"}) and its /events
// feed (HTTP/1.0, so no chunking). socketio: Engine.IO 4 / Socket.IO 5 over a WebSocket
// (/socket.io/?EIO=4&transport=websocket): "0{..}" -> "40", ping "2" -> "3", events
// '42["chat","T seq ts"]'. Every message text is "TAG seq publish_time_ms"; anything
// without our tag is ignored.
//
// Once every subscriber is connected it prints READY; the publisher then starts. It
// measures from START (after --warmup s) to END (--duration s later): deliveries and
// publish-to-delivery latency. In the middle of the window --churn of the connections of
// each kind are destroyed and reconnect --gap s later: a faye client resumes with its last
// id (lastEventId= / Last-Event-ID), a Socket.IO client reconnects as its client library
// does (no resume). When a connection gets "TAG end LAST" it is done; after every
// connection is done (or --end-timeout) it prints RESULT {json} with, per kind, the
// messages lost (seqs from its first one to LAST that it never got), duplicated, resets.

'use strict';
const net = require('net');
const { performance } = require('perf_hooks');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const HOST = '127.0.0.1';
const PORT = Number(args.port);
const KIND = args.kind;
const TAG = args.tag;
const NWS = Number(args.ws ?? 0);
const NSSE = Number(args.sse ?? 0);
const WARMUP = Number(args.warmup ?? 2) * 1000;
const DURATION = Number(args.duration ?? 10) * 1000;
const CHURN = Number(args.churn ?? 0.1);
const GAP = Number(args.gap ?? 0.5) * 1000;
const END_TIMEOUT = Number(args['end-timeout'] ?? 20) * 1000;
const SINCE = args.since || '';
const MASK = Buffer.from([0x11, 0x22, 0x33, 0x44]);
const now = () => performance.timeOrigin + performance.now();

function frame(opcode, text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  let header;
  if (n <= 125) header = Buffer.from([0x80 | opcode, 0x80 | n]);
  else { header = Buffer.alloc(4); header[0] = 0x80 | opcode; header[1] = 0xfe; header.writeUInt16BE(n, 2); }
  for (let i = 0; i < n; i++) payload[i] ^= MASK[i & 3];
  return Buffer.concat([header, MASK, payload]);
}

// ------------------------------------------------------------- counting
const stats = { ws: newStats(), sse: newStats() };
function newStats() { return { window: 0, lat: [], replayed: 0, resets: 0, reconnects: 0, closes: {} }; }
let measuring = false, done = 0, lastSeq = null;
const conns = [];

function deliver(conn, text, t) {
  const at = text.indexOf(TAG + ' ');
  if (at < 0) return;
  const rest = text.slice(at + TAG.length + 1).split(' ');
  if (rest[0] === 'end') {  // parseInt/parseFloat: a Socket.IO packet ends with '"]'
    if (!conn.done) { conn.done = true; done++; lastSeq = parseInt(rest[1], 10); }
    return;
  }
  const seq = parseInt(rest[0], 10);
  const st = stats[conn.kind];
  if (conn.firstSeq === null) conn.firstSeq = seq;
  if (conn.seen.has(seq)) conn.dups++; else conn.seen.add(seq);
  if (measuring) {
    st.window++;
    // Latency of live messages only: one published before this connection opened is a
    // replay after a reconnect (its wait includes the time the client was away).
    const published = parseFloat(rest[1]);
    if (published < conn.openedAt) st.replayed++;
    else if (st.lat.length < 400000) st.lat.push(t - published);
  }
}

// --------------------------------------------------------- WebSocket frames
function wsParser(conn, onText) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f, h = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); h = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); h = 10; }
      if (buf.length < h + len) return;
      const opcode = buf[0] & 0x0f;
      const payload = buf.subarray(h, h + len);
      buf = buf.subarray(h + len);
      if (opcode === 1) onText(payload.toString());
      else if (opcode === 9) conn.sock.write(frame(0xa, payload.toString('latin1')));
      else if (opcode === 8) {
        const code = len >= 2 ? payload.readUInt16BE(0) : 1005;
        stats[conn.kind].closes[code] = (stats[conn.kind].closes[code] || 0) + 1;
        conn.sock.destroy();
        return;
      }
    }
  };
}

function openWs(conn, path, onText) {
  const sock = net.connect(PORT, HOST);
  conn.sock = sock;
  sock.setNoDelay(true);
  sock.on('connect', () => sock.write(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
  let head = Buffer.alloc(0), parse = null;
  sock.on('data', (chunk) => {
    if (parse) { parse(chunk); return; }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!head.subarray(0, 12).toString().includes('101')) { sock.destroy(); return; }
    conn.open = true;
    conn.openedAt = now();
    parse = wsParser(conn, onText);
    if (conn.onOpen) conn.onOpen();
    parse(head.subarray(end + 4));
  });
  sock.on('error', () => {});
  sock.on('close', () => { conn.open = false; reconnectLater(conn); });
}

// ------------------------------------------------------------- the clients
function fayeWs(conn) {
  const resume = conn.lastId ? `&lastEventId=${encodeURIComponent(conn.lastId)}` : '';
  openWs(conn, `/chat?name=${conn.name}${resume}`, (text) => {
    const t = now();
    const m = /"id": "([^"]+)"/.exec(text);
    if (m) conn.lastId = m[1];
    if (text.includes('"reset"')) { stats.ws.resets++; conn.resets++; return; }
    deliver(conn, text, t);
  });
}

function fayeSse(conn) {
  const sock = net.connect(PORT, HOST);
  conn.sock = sock;
  const last = conn.lastId || SINCE;
  sock.on('connect', () => sock.write(
    `GET /events HTTP/1.0\r\nHost: ${HOST}:${PORT}\r\nAccept: text/event-stream\r\n` +
    (last ? `Last-Event-ID: ${last}\r\n` : '') + '\r\n'));
  let pending = '', headDone = false, id = null, event = null, data = null;
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    const t = now();
    pending += chunk;
    if (!headDone) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!pending.slice(0, 16).includes(' 200')) { sock.destroy(); return; }
      headDone = true; conn.open = true; conn.openedAt = now();
      if (conn.onOpen) conn.onOpen();
      pending = pending.slice(end + 4);
    }
    const lines = pending.split('\n');
    pending = lines.pop();
    for (const line of lines) {
      if (line === '' || line === '\r') {
        if (data !== null) {
          if (id !== null) conn.lastId = id;
          if (event === 'reset') { stats.sse.resets++; conn.resets++; }
          else if (event === 'chat') deliver(conn, data, t);
        }
        id = event = data = null;
        continue;
      }
      const colon = line.indexOf(':');
      if (colon === 0) continue;
      const name = line.slice(0, colon), value = line.slice(colon + 2).replace(/\r$/, '');
      if (name === 'id') id = value; else if (name === 'event') event = value; else if (name === 'data') data = value;
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => { conn.open = false; reconnectLater(conn); });
}

function socketIo(conn) {
  openWs(conn, '/socket.io/?EIO=4&transport=websocket', (text) => {
    const t = now();
    if (text[0] === '0') conn.sock.write(frame(1, '40'));
    else if (text === '2') conn.sock.write(frame(1, '3'));
    else if (text.startsWith('42')) deliver(conn, text, t);
  });
}

const OPEN = { 'faye-ws': fayeWs, 'faye-sse': fayeSse, 'socketio-ws': socketIo };

function start(conn) { conn.attempts++; conn.openedAt = Infinity; OPEN[`${KIND}-${conn.kind}`](conn); }

function reconnectLater(conn) {
  if (finished) return;
  stats[conn.kind].reconnects++;
  setTimeout(() => start(conn), conn.dropped ? GAP : 100);
  conn.dropped = false;
}

// ------------------------------------------------------------- the run
let finished = false;
function make(kind, i) {
  return { kind, name: `b${kind}${i}`, sock: null, open: false, lastId: null, firstSeq: null,
    seen: new Set(), dups: 0, done: false, attempts: 0, dropped: false, onOpen: null,
    openedAt: Infinity, resets: 0 };
}
for (let i = 0; i < NWS; i++) conns.push(make('ws', i));
for (let i = 0; i < NSSE; i++) conns.push(make('sse', i));

let opened = 0, next = 0;
function openMore() {  // 100 at a time, so that the listen backlog is not flooded
  while (next < conns.length && next - opened < 100) {
    const conn = conns[next++];
    conn.onOpen = () => { conn.onOpen = null; opened++; openMore(); if (opened === conns.length) ready(); };
    start(conn);
  }
}
openMore();
const openDeadline = setTimeout(() => {
  console.error(`only ${opened}/${conns.length} subscribers connected`);
  process.exit(1);
}, 60000);

function ready() {
  clearTimeout(openDeadline);
  process.stdout.write('READY\n');
  setTimeout(() => {
    measuring = true;
    const t0 = now();
    process.stdout.write('START\n');
    setTimeout(churn, DURATION / 2);
    setTimeout(() => {
      measuring = false;
      const elapsed = (now() - t0) / 1000;
      process.stdout.write('END\n');
      waitForEnd(elapsed);
    }, DURATION);
  }, WARMUP);
}

function churn() {  // drop a share of each kind; they reconnect GAP later
  for (const kind of ['ws', 'sse']) {
    const mine = conns.filter((c) => c.kind === kind && c.open);
    for (let i = 0; i < Math.floor(mine.length * CHURN); i++) {
      const conn = mine[Math.floor((i * mine.length) / Math.floor(mine.length * CHURN))];
      conn.dropped = true;
      conn.sock.destroy();
    }
  }
}

function waitForEnd(elapsed) {
  const deadline = now() + END_TIMEOUT;
  const timer = setInterval(() => {
    if (done < conns.length && now() < deadline) return;
    clearInterval(timer);
    finished = true;
    report(elapsed);
  }, 100);
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null; }

function report(elapsed) {
  const result = { kind: KIND, elapsed, last_seq: lastSeq, not_done: conns.length - done };
  for (const kind of ['ws', 'sse']) {
    const mine = conns.filter((c) => c.kind === kind);
    if (!mine.length) continue;
    const st = stats[kind];
    let lost = 0, dups = 0, expected = 0, announced = 0;
    for (const c of mine) {
      dups += c.dups;
      // Only a connection that got the end can have lost anything; one still behind
      // when the end timeout came is counted in "unfinished".
      if (c.firstSeq === null || lastSeq === null || !c.done) continue;
      // A connection told of a gap (a reset) has its missing messages counted as
      // announced; "lost" are those missing with nothing said.
      for (let s = c.firstSeq; s <= lastSeq; s++) {
        expected++;
        if (!c.seen.has(s)) { if (c.resets) announced++; else lost++; }
      }
    }
    const lat = st.lat.sort((a, b) => a - b);
    result[kind] = {
      subscribers: mine.length, delivered_in_window: st.window, rate: st.window / elapsed,
      p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), expected, lost, announced, duplicated: dups,
      replayed: st.replayed, resets: st.resets, reconnects: st.reconnects, close_codes: st.closes,
      never_got_any: mine.filter((c) => c.firstSeq === null).length,
      unfinished: mine.filter((c) => !c.done).length,
    };
  }
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n');
  for (const c of conns) if (c.sock) c.sock.destroy();
  setTimeout(() => process.exit(0), 200);
}
setTimeout(() => { console.error('fanout.js: hard timeout'); process.exit(2); },
  60000 + WARMUP + DURATION + END_TIMEOUT + 60000).unref();
