#!/usr/bin/env node
// rhea receiver for the interop suite: receives from --address on the broker at --host:--port.
//
//   node rhea_recv.js --port P [--host 127.0.0.1] [--address examples] [--count N]
//                     [--credit C] [--grace S] [--selector "colour = 'green'"]
//                     [--dispositions reject,release,modify,accept] [--drain]
//                     [--timeout 30]
//                     [--username U [--password P]] [--ca CA.pem [--servername localhost]]
//
// Stops after --count messages, or, with --count 0, once nothing has arrived for --grace
// seconds. Grants --credit at a time (default: --count, or 100), never more than --count in
// all. The i-th message received (0-based) is settled with the i-th word of --dispositions
// (accept when there is none): accept, reject, release, or modify (modified, delivery-failed).
// With --selector it attaches with a JMS selector filter. With --drain it asks the sender to
// drain its first grant and stops once rhea reports receiver_drained (drained: true).
//
// Each disposition other than accept goes out in its own write (one per event-loop turn):
// rhea 3.0.5's write_dispositions merges a run of adjacent deliveries into one disposition
// frame without comparing the outcomes of its first two, so a reject followed at once by a
// release went out as one `rejected` for both.
//
// The last line of stdout is a JSON summary: {ids, delivery_counts, bodies_ok, drained, errors,
// timed_out}; bodies_ok says every body was {sequence: id} (with --size B: the data section
// rhea_send.js --size B sent). The exit status is 0 unless it
// timed out or failed.
'use strict';
const { parseArgs, loadRhea, finish, limit, connectOptions, pattern, CONNECT_DEFAULTS } = require('./rhea_common.js');

const a = parseArgs(process.argv.slice(2), {
  host: '127.0.0.1', port: 5672, address: 'examples', count: 0, credit: 0, grace: 1.0,
  selector: '', dispositions: '', drain: false, size: 0, timeout: 30,
  ...CONNECT_DEFAULTS,
});
const rhea = loadRhea();
const container = rhea.create_container({ id: 'rhea-recv' });
const r = {
  mode: 'recv', ids: [], delivery_counts: [], bodies_ok: true, drained: false, errors: [],
  timed_out: false,
};
limit(a.timeout, r);
const dispositions = a.dispositions ? a.dispositions.split(',') : [];
const credit = a.credit || a.count || 100;
let idle = null;
let granted = 0; // credit granted so far
let closing = false;
let finishing = false;
const pending = []; // dispositions waiting for their own turn
let pumping = false;

function pump(context) {
  if (pumping) return;
  pumping = true;
  setImmediate(() => {
    pumping = false;
    const f = pending.shift();
    if (f) f();
    if (pending.length) pump(context);
    else if (finishing) done(context);
  });
}

function done(context) {
  if (closing) return;
  finishing = true;
  if (pending.length || pumping) return; // pump() calls back when they are out
  closing = true;
  if (idle) clearTimeout(idle);
  context.receiver.close();
  context.connection.close();
}

function armIdle(context) {
  if (a.count !== 0) return;
  if (idle) clearTimeout(idle);
  idle = setTimeout(() => done(context), a.grace * 1000);
}

container.on('receiver_open', (context) => {
  granted = a.count !== 0 ? Math.min(credit, a.count) : credit;
  if (a.drain) context.receiver.drain = true;
  context.receiver.add_credit(granted);
  armIdle(context);
});

container.on('message', (context) => {
  if (finishing) { context.delivery.release(); return; }
  const m = context.message;
  const i = r.ids.length;
  const id = typeof m.message_id === 'number' ? m.message_id : Number(m.message_id);
  r.ids.push(id);
  r.delivery_counts.push(m.delivery_count || 0);
  if (a.size) {
    const b = m.body && m.body.content;
    if (!Buffer.isBuffer(b) || !b.equals(pattern(id, a.size))) r.bodies_ok = false;
  } else if (!m.body || Number(m.body.sequence) !== id) r.bodies_ok = false;
  const d = context.delivery;
  const how = dispositions[i] || 'accept';
  if (how === 'accept' && !pending.length) {
    d.accept();
  } else {
    pending.push(() => {
      switch (how) {
        case 'accept': d.accept(); break;
        case 'reject': d.reject({ condition: 'test:rejected', description: 'rejected by rhea_recv' }); break;
        case 'release': d.release(); break;
        case 'modify': d.modified({ delivery_failed: true }); break;
        default: r.errors.push('unknown disposition ' + how);
      }
    });
    pump(context);
  }
  if (a.count !== 0 && r.ids.length >= a.count) { done(context); return; }
  // Keep the credit topped up to --credit, never granting more than --count in all (what
  // would arrive past it would go back unsettled, its delivery-count raised).
  const c = context.receiver.credit;
  if (!a.drain && c < credit / 2) {
    let more = credit - c;
    if (a.count !== 0) more = Math.min(more, a.count - granted);
    if (more > 0) { granted += more; context.receiver.add_credit(more); }
  }
  armIdle(context);
});
container.on('receiver_drained', (context) => {
  r.drained = true;
  if (a.drain) done(context);
});
for (const ev of ['connection_error', 'session_error', 'receiver_error', 'protocol_error']) {
  container.on(ev, (c) => {
    const e = c.error || (c.connection && c.connection.error);
    r.errors.push(ev + ': ' + (e && (e.description || e.message || JSON.stringify(e))));
  });
}
container.on('error', (c) => { r.errors.push('error: ' + (c.error && c.error.message)); finish(r); });
container.on('disconnected', (c) => {
  if (!closing) r.errors.push('disconnected: ' + (c.error && c.error.message));
  finish(r);
});
container.on('connection_close', () => finish(r));

const conn = container.connect(connectOptions(a));
const source = { address: a.address };
if (a.selector) source.filter = rhea.filter.selector(a.selector);
conn.open_receiver({ source, credit_window: 0, autoaccept: false });
