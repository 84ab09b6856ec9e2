#!/usr/bin/env node
// The I/O floor, not a library: answer the upgrade, then echo every byte back
// as is (client frames return still masked; the load generator accepts that).
// It shows what the load generator can drive: node floor_node.js --port P
'use strict';
const net = require('net');
const crypto = require('crypto');
const i = process.argv.indexOf('--port');
const port = Number(process.argv[i + 1]);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
net.createServer((sock) => {
  sock.setNoDelay(true);
  let head = Buffer.alloc(0);
  const onHead = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    sock.removeListener('data', onHead);
    const m = /sec-websocket-key:\s*(\S+)/i.exec(head.subarray(0, end).toString('latin1'));
    const accept = crypto.createHash('sha1').update(m[1] + GUID).digest('base64');
    sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const rest = head.subarray(end + 4);
    if (rest.length) sock.write(rest);
    sock.on('data', (d) => {
      // the load generator's close frame (8 bytes, nothing else in the read): answer and end
      if (d.length === 8 && d[0] === 0x88) { sock.end(Buffer.from([0x88, 0x02, 0x03, 0xe8])); return; }
      sock.write(d);
    });
  };
  sock.on('data', onHead);
  sock.on('error', () => {});
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
