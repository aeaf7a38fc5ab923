#!/usr/bin/env python3
"""A python-qpid-proton peer for amqp-tokio's TLS interop tests (tests/tls_interop.rs).

Either connects to a URL (``--connect``) or listens on 127.0.0.1 (``--listen PORT``, 0 = any
free port; prints ``READY <port>`` once listening), with TLS configured from PEM files:

* client: ``--ca`` (trusted CAs), ``--verify name|peer|none``, optional ``--cert``/``--key``
  (client certificate), ``--mechs``/``--user``/``--password`` for SASL;
* listener: ``--cert``/``--key`` (server certificate); ``--require-client-cert`` verifies
  client certificates against ``--ca``; ``--plain`` listens without TLS.

Then it exchanges ``--count`` messages each way: as a client it attaches a receiver (source
"in") and a sender (target "out") and closes once everything arrived and every outcome came
back; as a listener it answers the peer's links, sends ``--count`` messages on its sender and
waits for the peer to close.

Everything is bounded by ``--timeout`` seconds. The last stdout line is a JSON summary.
"""
import argparse
import json
import sys
import time

from proton import Message, SSLDomain, SASL
from proton.handlers import MessagingHandler
from proton.reactor import Container


class _Call:
    def __init__(self, fn):
        self.fn = fn

    def on_timer_task(self, event):
        self.fn(event)


def domain(a, listener):
    if listener:
        if a.plain:
            return None
        d = SSLDomain(SSLDomain.MODE_SERVER)
        d.set_credentials(a.cert, a.key, None)
        if a.require_client_cert:
            d.set_trusted_ca_db(a.ca)
            d.set_peer_authentication(SSLDomain.VERIFY_PEER, a.ca)
        else:
            d.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        return d
    if not a.connect.startswith("amqps:"):
        return None
    d = SSLDomain(SSLDomain.MODE_CLIENT)
    if a.ca:
        d.set_trusted_ca_db(a.ca)
    mode = {"name": SSLDomain.VERIFY_PEER_NAME, "peer": SSLDomain.VERIFY_PEER,
            "none": SSLDomain.ANONYMOUS_PEER}[a.verify]
    d.set_peer_authentication(mode)
    if a.cert:
        d.set_credentials(a.cert, a.key, None)
    return d


class Peer(MessagingHandler):
    def __init__(self, a):
        super().__init__(prefetch=100, auto_accept=True, auto_settle=True)
        self.a = a
        self.listener = a.listen is not None
        self.sent = 0
        self.received = []
        self.accepted = 0
        self.opened = False
        self.closed = False
        self.transport_error = None
        self.remote_close_error = None
        self.timed_out = False
        self.ssl = None
        self.sasl_mech = None
        self.sasl_user = None
        self.conn = None
        self.acceptor = None
        self.timer = None
        self.started = time.monotonic()

    def done(self):
        return len(self.received) >= self.a.count and self.accepted >= self.a.count

    def maybe_close(self):
        if not self.listener and self.conn is not None and self.done():
            if not (self.conn.state & self.conn.LOCAL_CLOSED):
                self.conn.close()

    def stop(self, container):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
        container.stop()

    def time_out(self, event):
        self.timed_out = True
        self.timer = None
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close_tail()
            self.conn.transport.close_head()
        self.stop(event.container)

    def on_start(self, event):
        c = event.container
        self.timer = c.schedule(self.a.timeout, _Call(self.time_out))
        d = domain(self.a, self.listener)
        if self.listener:
            scheme = "amqp" if self.a.plain else "amqps"
            self.acceptor = c.listen("%s://127.0.0.1:%d" % (scheme, self.a.listen), ssl_domain=d)
            port = self.acceptor._selectable.getsockname()[1]
            print("READY %d" % port, flush=True)
            return
        kw = dict(reconnect=False, allow_insecure_mechs=True, container_id="proton-client")
        if d is not None:
            kw["ssl_domain"] = d
        if self.a.mechs:
            kw["allowed_mechs"] = self.a.mechs
        if self.a.user is not None:
            kw["user"] = self.a.user
        if self.a.password is not None:
            kw["password"] = self.a.password
        if getattr(self.a, "virtual_host", None):
            kw["virtual_host"] = self.a.virtual_host
        self.conn = c.connect(self.a.connect, **kw)
        c.create_receiver(self.conn, source="in", name="proton-rx")
        c.create_sender(self.conn, target="out", name="proton-tx")

    def on_connection_bound(self, event):
        if self.listener:
            event.transport.sasl()  # offer SASL (proton without Cyrus: ANONYMOUS, EXTERNAL)

    def on_connection_opening(self, event):
        if self.conn is None:
            self.conn = event.connection

    def _note_security(self, t):
        ssl = getattr(t, "_ssl", None)
        if ssl is not None:
            self.ssl = {"protocol": ssl.protocol_name(), "cipher": ssl.cipher_name(),
                        "remote_subject": ssl.remote_subject}
        s = t.sasl()
        self.sasl_mech = s.mech() if callable(s.mech) else s.mech
        self.sasl_user = s.user

    def on_connection_opened(self, event):
        self.opened = True
        if event.transport is not None:
            self._note_security(event.transport)
        self.maybe_close()

    def on_link_opening(self, event):
        link = event.link
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)

    def on_sendable(self, event):
        s = event.sender
        while s.credit > 0 and self.sent < self.a.count:
            s.send(Message(id=self.sent, body="from proton %d" % self.sent))
            self.sent += 1

    def on_message(self, event):
        self.received.append(event.message.body)
        self.maybe_close()

    def on_accepted(self, event):
        self.accepted += 1
        self.maybe_close()

    def on_connection_remote_close(self, event):
        c = event.connection.remote_condition
        if c is not None:
            self.remote_close_error = {"condition": c.name, "description": c.description}

    def on_connection_closed(self, event):
        self.closed = True

    def on_transport_error(self, event):
        c = event.transport.condition
        if c is not None:
            self.transport_error = {"condition": c.name, "description": c.description}

    def on_transport_closed(self, event):
        self.stop(event.container)

    def summary(self):
        return {
            "mode": "listen" if self.listener else "connect",
            "opened": self.opened,
            "closed": self.closed,
            "sent": self.sent,
            "received": self.received,
            "accepted": self.accepted,
            "transport_error": self.transport_error,
            "remote_close_error": self.remote_close_error,
            "timed_out": self.timed_out,
            "ssl": self.ssl,
            "sasl_mech": self.sasl_mech,
            "sasl_user": self.sasl_user,
            "sasl_extended": SASL.extended(),
            "secs": round(time.monotonic() - self.started, 3),
        }


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--connect", metavar="URL")
    g.add_argument("--listen", metavar="PORT", type=int)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--verify", choices=["name", "peer", "none"], default="name")
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--plain", action="store_true", help="listener without TLS")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechs")
    p.add_argument("--timeout", type=float, default=20.0)
    a = p.parse_args()
    peer = Peer(a)
    try:
        Container(peer).run()
    except Exception as e:  # report, do not hang
        peer.transport_error = peer.transport_error or {"condition": "python-exception",
                                                        "description": repr(e)}
    print(json.dumps(peer.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
