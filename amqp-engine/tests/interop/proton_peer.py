#!/usr/bin/env python3
"""A python-qpid-proton peer for amqp-engine's interop tests (tests/interop_proton.rs).

It either connects to a URL (``--connect``) or listens on 127.0.0.1 (``--listen PORT``,
0 = any free port; prints ``READY <port>`` once listening) and then:

* receives ``--count`` messages on the link whose address is "in" (accepting each and
  checking the i-th carries message-id i), and
* sends ``--count`` messages on the link whose address is "out", awaiting an outcome for each.

As a client it attaches a receiver (source "in") and a sender (target "out") itself and closes
the connection once every message has been received and every outcome has arrived. As a
listener it answers the links the peer attaches, and waits for the peer to close.

Everything is bounded by ``--timeout`` seconds. The last line of stdout is a JSON summary.
"""
import argparse
import json
import sys
import time

from proton import Message, SASL
from proton.handlers import MessagingHandler
from proton.reactor import Container


def body_for(i, size):
    if size <= 0:
        return "message %d" % i
    # A byte pattern that depends on the message number, so truncation or reordering shows.
    return bytes(((i + k) % 251) for k in range(size))


def body_ok(body, i, size):
    if size <= 0:
        return body == "message %d" % i
    b = bytes(body)
    return len(b) == size and b == body_for(i, size)


class _Call:
    """A timer handler that calls a function."""

    def __init__(self, fn):
        self.fn = fn

    def on_timer_task(self, event):
        self.fn(event)


class Peer(MessagingHandler):
    def __init__(self, args):
        super().__init__(prefetch=args.prefetch, auto_accept=True, auto_settle=True)
        self.a = args
        self.sent = 0
        self.received = 0
        self.in_order = True
        self.bodies_ok = True
        self.outcomes = {"accepted": 0, "rejected": 0, "released": 0, "modified": 0}
        self.error = None
        self.transport_error = None
        self.remote_close_error = None
        self.opened = False
        self.closed_cleanly = False
        self.timed_out = False
        self.remote_idle_timeout_ms = None
        self.remote_max_frame = None
        self.remote_container = None
        self.sasl_mech = None
        self.sasl_user = None
        self.sasl_outcome = None
        self.sender = None
        self.receiver = None
        self.conn = None
        self.acceptor = None
        self.timer = None
        self.idle_timer = None
        self.idle_done = args.idle <= 0
        self.started = time.monotonic()
        self.finished_at = None

    # -- helpers ---------------------------------------------------------------------------
    def done_exchanging(self):
        return (self.received >= self.a.count and
                sum(self.outcomes.values()) >= self.a.count and self.idle_done)

    def maybe_close(self):
        if self.a.listen is None and self.conn is not None and self.done_exchanging():
            if not (self.conn.state & self.conn.LOCAL_CLOSED):
                self.conn.close()

    def stop(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
        if self.finished_at is None:
            self.finished_at = time.monotonic()

    def idle_over(self, event):
        self.idle_timer = None
        self.idle_done = True
        self.maybe_close()

    def time_out(self, event):
        self.timed_out = True
        self.timer = None
        self.stop()
        if self.conn is not None:
            self.conn.close()
            if self.conn.transport is not None:
                self.conn.transport.close_tail()
                self.conn.transport.close_head()
        event.container.stop()

    # -- lifecycle -------------------------------------------------------------------------
    def on_start(self, event):
        c = event.container
        self.timer = c.schedule(self.a.timeout, _Call(self.time_out))
        if self.a.listen is not None:
            self.acceptor = c.listen("127.0.0.1:%d" % self.a.listen)
            try:
                port = self.acceptor._selectable.getsockname()[1]
            except Exception:  # older proton: the port we were given
                port = self.a.listen
            print("READY %d" % port, flush=True)
        else:
            kw = dict(reconnect=False, sasl_enabled=not self.a.no_sasl,
                      allow_insecure_mechs=True, container_id="proton-client")
            if self.a.mechs:
                kw["allowed_mechs"] = self.a.mechs
            if self.a.user is not None:
                kw["user"] = self.a.user
            if self.a.password is not None:
                kw["password"] = self.a.password
            if self.a.heartbeat:
                kw["heartbeat"] = self.a.heartbeat
            if self.a.max_frame:
                kw["max_frame_size"] = self.a.max_frame
            self.conn = c.connect(self.a.connect, **kw)
            if self.a.count > 0:
                self.receiver = c.create_receiver(self.conn, source="in", name="proton-rx")
                self.sender = c.create_sender(self.conn, target="out", name="proton-tx")
            if self.a.idle > 0:
                self.idle_timer = c.schedule(self.a.idle, _Call(self.idle_over))

    def on_connection_bound(self, event):
        # Listener side: configure the accepted transport before any byte is read.
        if self.a.listen is None:
            return
        t = event.transport
        if self.a.no_sasl:
            pass
        else:
            sasl = t.sasl()
            if self.a.mechs:
                sasl.allowed_mechs(self.a.mechs)
        if self.a.require_auth:
            t.require_auth(True)
        if self.a.heartbeat:
            t.idle_timeout = self.a.heartbeat
        if self.a.max_frame:
            t.max_frame_size = self.a.max_frame

    def on_connection_opening(self, event):
        if self.conn is None:
            self.conn = event.connection
            event.connection.container = "proton-listener"

    def on_connection_opened(self, event):
        self.opened = True
        t = event.transport
        if t is not None:
            self.remote_idle_timeout_ms = int(round(t.remote_idle_timeout * 1000))
            self.remote_max_frame = t.remote_max_frame_size
            s = t.sasl()
            self.sasl_mech = s.mech() if callable(s.mech) else s.mech
            self.sasl_user = s.user
            self.sasl_outcome = s.outcome
        self.remote_container = event.connection.remote_container
        self.maybe_close()

    def on_link_opening(self, event):
        link = event.link
        # Answer the peer's attach with the same termini (the MessagingHandler does not copy).
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        if link.is_sender:
            self.sender = link
        else:
            self.receiver = link

    def on_sendable(self, event):
        s = event.sender  # our only sender (proton's python wrappers are not identical objects)
        while s.credit > 0 and self.sent < self.a.count:
            m = Message(id=self.sent, body=body_for(self.sent, self.a.size))
            s.send(m)
            self.sent += 1

    def on_message(self, event):
        m = event.message
        if m.id != self.received:
            self.in_order = False
        if not body_ok(m.body, self.received, self.a.size):
            self.bodies_ok = False
        self.received += 1
        self.maybe_close()

    def _outcome(self, kind):
        self.outcomes[kind] += 1
        self.maybe_close()

    def on_accepted(self, event):
        self._outcome("accepted")

    def on_rejected(self, event):
        self._outcome("rejected")

    def on_released(self, event):
        self._outcome("released")

    def on_modified(self, event):
        self._outcome("modified")

    def on_connection_remote_close(self, event):
        c = event.connection.remote_condition
        if c is not None:
            self.remote_close_error = {"condition": c.name, "description": c.description}
        # (The MessagingHandler's child handlers answer the close.)

    def on_connection_closed(self, event):
        # Both ends closed.
        self.closed_cleanly = self.remote_close_error is None and self.transport_error is None
        self.stop()

    def on_transport_error(self, event):
        c = event.transport.condition
        if c is not None:
            self.transport_error = {"condition": c.name, "description": c.description}
        try:
            self.sasl_outcome = event.transport.sasl().outcome
        except Exception:
            pass
        # No super(): it would close the connection and print; we report instead.

    def on_transport_closed(self, event):
        self.stop()
        # Without this the reactor idles for its default timeout (~3.14 s) before run() returns.
        event.container.stop()

    def summary(self):
        end = self.finished_at or time.monotonic()
        return {
            "mode": "listen" if self.a.listen is not None else "connect",
            "count": self.a.count,
            "sent": self.sent,
            "received": self.received,
            "in_order": self.in_order,
            "bodies_ok": self.bodies_ok,
            "outcomes": self.outcomes,
            "opened": self.opened,
            "closed_cleanly": self.closed_cleanly,
            "timed_out": self.timed_out,
            "transport_error": self.transport_error,
            "remote_close_error": self.remote_close_error,
            "remote_idle_timeout_ms": self.remote_idle_timeout_ms,
            "remote_max_frame": self.remote_max_frame,
            "remote_container": self.remote_container,
            "sasl_mech": self.sasl_mech,
            "sasl_user": self.sasl_user,
            "sasl_outcome": None if self.sasl_outcome is None else int(self.sasl_outcome),
            "sasl_extended": SASL.extended(),
            "secs": round(end - self.started, 3),
        }


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--connect", metavar="URL")
    g.add_argument("--listen", metavar="PORT", type=int)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--size", type=int, default=0, help="binary body of this many bytes")
    p.add_argument("--prefetch", type=int, default=500)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechs", help="allowed SASL mechanisms (space separated)")
    p.add_argument("--no-sasl", action="store_true")
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--heartbeat", type=float, default=0.0, help="our idle-timeout, seconds")
    p.add_argument("--max-frame", type=int, default=0)
    p.add_argument("--idle", type=float, default=0.0, help="stay idle this long before closing")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    peer = Peer(args)
    try:
        Container(peer).run()
    except Exception as e:  # report, do not hang
        peer.transport_error = peer.transport_error or {"condition": "python-exception",
                                                        "description": repr(e)}
    print(json.dumps(peer.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
