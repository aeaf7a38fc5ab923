#!/usr/bin/env node
// rhea as a listener for the interop suite: our clients connect to it.
//
//   node rhea_listen.js --port P [--timeout 60]
//
// Listens on 127.0.0.1:P and prints "listening" once it does. Every message that arrives is
// accepted and printed as "id I" (its message-id). A receiver of ours that asks for a dynamic
// node gets one ("dynamic-N"); a message sent to "requests" is answered, upper-cased, on a
// sender to its reply-to address (a tiny request/response server). rhea sends heartbeats at
// half the idle-timeout its peer asks for. Exits after --timeout seconds (the test kills it by
// PID sooner).
'use strict';
const { parseArgs, loadRhea } = require('./rhea_common.js');

const a = parseArgs(process.argv.slice(2), { port: 5672, timeout: 60 });
const rhea = loadRhea();
const container = rhea.create_container({ id: 'rhea-listen' });
let dynamic = 0;
const replyTo = new Map(); // address -> our sender to the receiver attached from it

container.on('sender_open', (context) => {
  // Our side receives from this link: remember it by its source address.
  const source = context.sender.remote.attach.source;
  if (source && source.dynamic) {
    dynamic += 1;
    const address = 'dynamic-' + dynamic;
    context.sender.set_source({ address });
    replyTo.set(address, context.sender);
  } else if (source && source.address) {
    replyTo.set(source.address, context.sender);
  }
});

container.on('message', (context) => {
  const m = context.message;
  process.stdout.write('id ' + m.message_id + '\n');
  const target = context.receiver.target && context.receiver.target.address;
  if (target === 'requests' && m.reply_to && replyTo.has(m.reply_to)) {
    replyTo.get(m.reply_to).send({
      correlation_id: m.message_id,
      body: String(m.body).toUpperCase(),
    });
  }
});

container.listen({ port: a.port, host: '127.0.0.1' }).on('listening', () => {
  process.stdout.write('listening\n');
});

setTimeout(() => process.exit(0), a.timeout * 1000).unref();
// Keep running until the timeout even with no connection.
setInterval(() => {}, 1000);
