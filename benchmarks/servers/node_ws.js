#!/usr/bin/env node
// The ceiling: Node's `ws` (npm install ws --prefix benchmarks), echoing.
// node node_ws.js --port P
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', 'node_modules', 'ws'));
const i = process.argv.indexOf('--port');
const port = Number(process.argv[i + 1]);
const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 2 ** 26, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
process.on('SIGTERM', () => process.exit(0));
