#!/usr/bin/env node
// rhea sender for the interop suite: sends --count messages to --address on the broker at
// --host:--port and waits for every outcome.
//
//   node rhea_send.js --port P [--host 127.0.0.1] [--address examples] [--count 1000]
//                     [--colour] [--size B] [--timeout 30]
//                     [--username U [--password P]] [--ca CA.pem [--servername localhost]]
//
// Message i (1-based) has message-id i and body {sequence: i} (with --size B: a data section of
// B bytes, byte k being (i + k) % 251); with --colour it also has the
// application property colour = 'green' for odd i and 'red' for even i (like colour_send).
// The last line of stdout is a JSON summary: {sent, accepted, rejected, released, modified,
// errors, timed_out}; the exit status is 0 unless it timed out or failed.
'use strict';
const { parseArgs, loadRhea, finish, limit, connectOptions, pattern, CONNECT_DEFAULTS } = require('./rhea_common.js');

const a = parseArgs(process.argv.slice(2), {
  host: '127.0.0.1', port: 5672, address: 'examples', count: 1000, colour: false, size: 0, timeout: 30,
  ...CONNECT_DEFAULTS,
});
const rhea = loadRhea();
const container = rhea.create_container({ id: 'rhea-send' });
const r = {
  mode: 'send', sent: 0, accepted: 0, rejected: 0, released: 0, modified: 0,
  errors: [], timed_out: false,
};
limit(a.timeout, r);

function settled() {
  return r.accepted + r.rejected + r.released + r.modified;
}

function maybeDone(context) {
  if (settled() === a.count) context.connection.close();
}

container.on('sendable', (context) => {
  const s = context.sender;
  while (s.sendable() && r.sent < a.count) {
    r.sent++;
    const m = { message_id: r.sent, body: a.size ? rhea.message.data_section(pattern(r.sent, a.size)) : { sequence: r.sent } };
    if (a.colour) m.application_properties = { colour: r.sent % 2 ? 'green' : 'red' };
    s.send(m);
  }
});
container.on('accepted', (c) => { r.accepted++; maybeDone(c); });
container.on('rejected', (c) => { r.rejected++; maybeDone(c); });
container.on('released', (c) => { r.released++; maybeDone(c); });
container.on('modified', (c) => { r.modified++; maybeDone(c); });
for (const ev of ['connection_error', 'session_error', 'sender_error', 'protocol_error']) {
  container.on(ev, (c) => {
    const e = c.error || (c.connection && c.connection.error);
    r.errors.push(ev + ': ' + (e && (e.description || e.message || JSON.stringify(e))));
  });
}
container.on('error', (c) => { r.errors.push('error: ' + (c.error && c.error.message)); finish(r); });
container.on('disconnected', (c) => {
  if (settled() !== a.count) r.errors.push('disconnected: ' + (c.error && c.error.message));
  finish(r);
});
container.on('connection_close', () => finish(r));

const conn = container.connect(connectOptions(a));
// rhea reports 'modified' only when asked to (by default it treats modified as released).
conn.open_sender({ target: { address: a.address }, treat_modified_as_released: false });
