#!/usr/bin/env python3
"""A python-qpid-proton peer with Cyrus SASL for amqp-tokio's SASL interop tests
(tests/sasl_cyrus.rs). Run it with the python of the venv that scripts/proton-cyrus.sh builds
(proton compiled against Cyrus: ``proton.SASL.extended()`` is True).

It is the peer of ``proton_peer.py`` (same message exchange, same JSON summary, same
bounds) without TLS, with SASL settings for each side:

* ``--listen PORT``: a plain-TCP listener on 127.0.0.1 whose SASL server is Cyrus, configured
  the Proton way: the Cyrus configuration file ``<--sasl-config-name>.conf`` (Proton's default
  name is ``proton-server``) is looked up in ``--sasl-config-path`` (else in the environment
  variable ``PN_SASL_CONFIG_PATH``, else Cyrus's built-in directory). ``--mechs`` narrows the
  offered mechanisms further; cleartext mechanisms (PLAIN) are allowed without TLS.
* ``--connect URL``: a client using Cyrus for the mechanisms in ``--mechs`` with ``--user`` and
  ``--password``; ``--virtual-host`` sets the connection's host name (GSSAPI's ``amqp@HOST``).

The summary also reports the SASL outcome (``sasl_outcome``: 0 ok, 1 auth, ...), the
mechanism and the authenticated user, on both sides, including after a failed exchange.
"""
import argparse
import json
import os
import sys

from proton import SASL
from proton.reactor import Container

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proton_peer import Peer  # noqa: E402


class SaslPeer(Peer):
    def __init__(self, a):
        super().__init__(a)
        self.sasl_outcome = None

    def on_connection_bound(self, event):
        if not self.listener:
            return
        s = event.transport.sasl()
        # PLAIN over plain TCP: only for a test on loopback.
        s.allow_insecure_mechs = True
        if self.a.sasl_config_name:
            s.config_name(self.a.sasl_config_name)
        if self.a.sasl_config_path:
            s.config_path(self.a.sasl_config_path)
        if self.a.mechs:
            s.allowed_mechs(self.a.mechs)

    def _note_sasl(self, t):
        s = t.sasl()
        self.sasl_outcome = s.outcome
        self.sasl_mech = s.mech() if callable(s.mech) else s.mech
        self.sasl_user = s.user

    def on_connection_opened(self, event):
        super().on_connection_opened(event)
        if event.transport is not None:
            self._note_sasl(event.transport)

    def on_transport_error(self, event):
        super().on_transport_error(event)
        self._note_sasl(event.transport)

    def on_transport_closed(self, event):
        if self.sasl_outcome is None:
            self._note_sasl(event.transport)
        super().on_transport_closed(event)

    def summary(self):
        s = super().summary()
        s["sasl_outcome"] = self.sasl_outcome
        return s


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--connect", metavar="URL")
    g.add_argument("--listen", metavar="PORT", type=int)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechs")
    p.add_argument("--virtual-host")
    p.add_argument("--sasl-config-name")
    p.add_argument("--sasl-config-path")
    p.add_argument("--timeout", type=float, default=20.0)
    a = p.parse_args()
    # What proton_peer.Peer also reads: no TLS here.
    a.plain, a.ca, a.cert, a.key, a.verify, a.require_client_cert = True, None, None, None, "none", False
    if not SASL.extended():
        print(json.dumps({"error": "proton is built without Cyrus SASL (SASL.extended() is False)"}),
              flush=True)
        return 2
    peer = SaslPeer(a)
    try:
        Container(peer).run()
    except Exception as e:  # report, do not hang
        peer.transport_error = peer.transport_error or {"condition": "python-exception",
                                                        "description": repr(e)}
    print(json.dumps(peer.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
