#!/usr/bin/env python3
"""python-qpid-proton clients for the example broker's tests (tests/broker_python.rs).

    proton_client.py send     --url U --address A --count N [--size B] [--colour-props]
    proton_client.py recv     --url U --address A --count N [--size B] [--selector S] [--browse]
                              [--settle-mode first|presettled]
    proton_client.py outcomes --url U --address A         (reject, release, modify the next 3)
    proton_client.py request  --url U --address A --count N   (dynamic reply queue client)
    proton_client.py fail     --url U --address A --count N   (modify delivery-failed, N times)
    proton_client.py send-close --url U --address A           (send, close sender, await outcome)
    proton_client.py hold     --url U --address A --prefetch N (take N, never settle, wait)

Message i (0-based) has id i and body "message i" (or --size bytes of a pattern that depends
on i). Common options: --user, --password, --mechs, --ca (amqps, verify the broker against
this CA), --timeout seconds. The last line of stdout is a JSON summary; the exit status is 0
unless the run timed out or failed.
"""
import argparse
import json
import sys

from proton import Message, SSLDomain, Delivery
from proton.handlers import MessagingHandler
from proton.reactor import Container, Selector, Copy, AtMostOnce, DynamicNodeProperties


def body_for(i, size):
    if size <= 0:
        return "message %d" % i
    # Byte k is (i + k) % 251.
    start = i % 251
    return (bytes(range(251)) * (size // 251 + 2))[start:start + size]


def body_ok(body, i, size):
    if size <= 0:
        return body == "message %d" % i
    b = bytes(body)
    return len(b) == size and b == body_for(i, size)


class _Call:
    def __init__(self, fn):
        self.fn = fn

    def on_timer_task(self, event):
        self.fn(event)


class Client(MessagingHandler):
    def __init__(self, a, **kw):
        super().__init__(**kw)
        self.a = a
        self.result = {"mode": a.mode, "timed_out": False, "errors": []}
        self.conn = None
        self.timer = None

    def connect(self, event):
        c = event.container
        self.timer = c.schedule(self.a.timeout, _Call(self.time_out))
        kw = dict(reconnect=False, allow_insecure_mechs=True)
        if self.a.user is not None:
            kw["user"] = self.a.user
        if self.a.password is not None:
            kw["password"] = self.a.password
        if self.a.mechs:
            kw["allowed_mechs"] = self.a.mechs
        if self.a.ca:
            d = SSLDomain(SSLDomain.MODE_CLIENT)
            d.set_trusted_ca_db(self.a.ca)
            d.set_peer_authentication(SSLDomain.VERIFY_PEER)
            kw["ssl_domain"] = d
        self.conn = c.connect(self.a.url, **kw)
        return self.conn

    def finish(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.conn is not None:
            self.conn.close()

    def time_out(self, event):
        self.timer = None
        self.result["timed_out"] = True
        self.finish()
        event.container.stop()

    def on_transport_error(self, event):
        c = event.transport.condition
        self.result["errors"].append("transport: %s" % (c and c.name,))
        self.result["transport_error"] = c and c.name
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_link_error(self, event):
        c = event.link.remote_condition
        self.result["errors"].append("link: %s %s" % (c and c.name, c and c.description))
        self.result["link_error"] = c and c.name
        self.finish()

    def on_connection_error(self, event):
        c = event.connection.remote_condition
        self.result["errors"].append("connection: %s" % (c and c.name,))
        self.finish()


class Send(Client):
    def __init__(self, a):
        super().__init__(a)
        self.sent = 0
        self.outcomes = {"accepted": 0, "rejected": 0, "released": 0}

    def on_start(self, event):
        conn = self.connect(event)
        event.container.create_sender(conn, self.a.address)

    def on_sendable(self, event):
        s = event.sender
        while s.credit > 0 and self.sent < self.a.count:
            i = self.sent
            props = None
            if self.a.colour_props:
                props = {"colour": "green" if i % 2 == 0 else "red", "n": i}
            s.send(Message(id=i, body=body_for(i, self.a.size), properties=props))
            self.sent += 1

    def _done(self, kind):
        self.outcomes[kind] += 1
        if sum(self.outcomes.values()) == self.a.count:
            self.result.update(sent=self.sent, **self.outcomes)
            self.finish()

    def on_accepted(self, event):
        self._done("accepted")

    def on_rejected(self, event):
        self._done("rejected")

    def on_released(self, event):
        self._done("released")


class Recv(Client):
    """Receives --count messages (0: whatever arrives within --grace seconds), accepting
    each; messages that arrive after that are left unsettled."""

    def __init__(self, a):
        super().__init__(a, prefetch=a.prefetch, auto_accept=False)
        self.finished = False
        self.ids = []
        self.delivery_counts = []
        self.bodies_ok = True
        self.bodies = []

    def on_start(self, event):
        conn = self.connect(event)
        opts = []
        if self.a.selector:
            opts.append(Selector(self.a.selector))
        if self.a.browse:
            opts.append(Copy())
        if self.a.settle_mode == "presettled":
            opts.append(AtMostOnce())
        event.container.create_receiver(conn, self.a.address, options=opts or None)
        if self.a.count == 0:
            # Count what arrives within a short grace period, then stop.
            event.container.schedule(self.a.grace, _Call(lambda e: self.done()))

    def done(self):
        self.finished = True
        self.result.update(
            received=len(self.ids), ids=self.ids, delivery_counts=self.delivery_counts,
            in_order=self.ids == sorted(self.ids), bodies_ok=self.bodies_ok,
            bodies=self.bodies[:200])
        self.finish()

    def on_message(self, event):
        if self.finished:
            return
        self.accept(event.delivery)
        m = event.message
        i = m.id
        self.ids.append(i)
        self.delivery_counts.append(m.delivery_count)
        if isinstance(m.body, str):
            self.bodies.append(m.body)
        if isinstance(i, int) and not body_ok(m.body, i, self.a.size) and not self.a.selector:
            self.bodies_ok = False
        if self.a.count and len(self.ids) == self.a.count:
            self.done()


class Outcomes(Client):
    """Takes the next four messages: rejects the first, releases the second, modifies the
    third (delivery-failed) and the fourth (undeliverable-here)."""

    def __init__(self, a):
        super().__init__(a, prefetch=0, auto_accept=False)
        self.seen = []

    def on_start(self, event):
        conn = self.connect(event)
        self.rx = event.container.create_receiver(conn, self.a.address)
        self.rx.flow(4)

    def on_message(self, event):
        m = event.message
        self.seen.append(m.id)
        n = len(self.seen)
        if n == 1:
            self.reject(event.delivery)
        elif n == 2:
            self.release(event.delivery, delivered=False)
        elif n == 3:
            event.delivery.local.failed = True
            self.settle(event.delivery, Delivery.MODIFIED)
        elif n == 4:
            event.delivery.local.undeliverable = True
            self.settle(event.delivery, Delivery.MODIFIED)
            self.result.update(seen=self.seen)
            self.finish()


class Fail(Client):
    """Takes deliveries one at a time and modifies each with delivery-failed (as a consumer
    that cannot process it), recording the delivery-count it had; stops after --count
    deliveries or when nothing arrives for --grace seconds."""

    def __init__(self, a):
        super().__init__(a, prefetch=0, auto_accept=False)
        self.counts = []
        self.quiet = None

    def on_start(self, event):
        conn = self.connect(event)
        self.rx = event.container.create_receiver(conn, self.a.address)
        self.rx.flow(1)
        self.arm(event.container)

    def arm(self, container):
        if self.quiet is not None:
            self.quiet.cancel()
        self.quiet = container.schedule(self.a.grace, _Call(lambda e: self.done()))

    def done(self):
        self.quiet = None
        self.result.update(delivery_counts=self.counts)
        self.finish()

    def on_message(self, event):
        self.counts.append(event.message.delivery_count)
        event.delivery.local.failed = True
        self.settle(event.delivery, Delivery.MODIFIED)
        if len(self.counts) == self.a.count:
            if self.quiet is not None:
                self.quiet.cancel()
            self.done()
        else:
            self.rx.flow(1)
            self.arm(event.container)


class Hold(Client):
    """Receives with a window of --prefetch and never settles; prints HELD n as messages
    arrive, and waits (to be killed) until --timeout."""

    def __init__(self, a):
        super().__init__(a, prefetch=a.prefetch, auto_accept=False)
        self.n = 0

    def on_start(self, event):
        conn = self.connect(event)
        event.container.create_receiver(conn, self.a.address)

    def on_message(self, event):
        self.n += 1
        print("HELD %d" % self.n, flush=True)


class SendClose(Client):
    """Proton's helloworld_direct pattern: send one message, close the sender at once, wait
    for the outcome."""

    def on_start(self, event):
        conn = self.connect(event)
        event.container.create_sender(conn, self.a.address)
        self.sent = False

    def on_sendable(self, event):
        if not self.sent:
            self.sent = True
            event.sender.send(Message(id=0, body="Hello World!"))
            event.sender.close()

    def on_accepted(self, event):
        self.result["accepted"] = True
        self.finish()


class Request(Client):
    def __init__(self, a):
        super().__init__(a)
        self.responses = []
        self.reply_to = None
        self.sent = 0

    def on_start(self, event):
        conn = self.connect(event)
        self.sender = event.container.create_sender(conn, self.a.address)
        self.receiver = event.container.create_receiver(conn, None, dynamic=True)

    def next_request(self):
        if self.reply_to and self.sender.credit > 0 and self.sent == len(self.responses) \
                and self.sent < self.a.count:
            self.sender.send(Message(reply_to=self.reply_to, correlation_id=self.sent,
                                     body="request %d" % self.sent))
            self.sent += 1

    def on_link_opened(self, event):
        if event.receiver is not None and event.receiver.source.address is None and \
                event.receiver.remote_source.address:
            self.reply_to = event.receiver.remote_source.address
            self.result["reply_to"] = self.reply_to
        self.next_request()

    def on_sendable(self, event):
        self.next_request()

    def on_message(self, event):
        m = event.message
        self.responses.append([m.correlation_id, m.body])
        if len(self.responses) == self.a.count:
            self.result.update(responses=self.responses)
            self.finish()
        else:
            self.next_request()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["send", "recv", "outcomes", "request", "fail", "send-close",
                                     "hold"])
    p.add_argument("--url", required=True)
    p.add_argument("--address", default="examples")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--selector")
    p.add_argument("--browse", action="store_true")
    p.add_argument("--settle-mode", default="first")
    p.add_argument("--colour-props", action="store_true")
    p.add_argument("--prefetch", type=int, default=10)
    p.add_argument("--grace", type=float, default=1.0)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechs")
    p.add_argument("--ca")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    h = {"send": Send, "recv": Recv, "outcomes": Outcomes, "request": Request, "fail": Fail,
         "send-close": SendClose, "hold": Hold}[a.mode](a)
    Container(h).run()
    print(json.dumps(h.result), flush=True)
    sys.exit(1 if h.result["timed_out"] else 0)


if __name__ == "__main__":
    main()
