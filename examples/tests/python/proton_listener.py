#!/usr/bin/env python3
"""python-qpid-proton listeners for the interop suite (tests/interop_suite/python.rs): our
clients connect to them.

    proton_listener.py source --port P --count N   a sender on every receiver link that
                                                   attaches: messages 1..N (id i, body
                                                   "message i"); when asked to drain with
                                                   nothing left, it gives the credit back
    proton_listener.py sink --port P               accepts every message; prints each id on
                                                   its own line as it comes ("id I")

Listens on 127.0.0.1:P and prints "listening" once it does; the source prints "sent N" once
it has sent all N, and "drained K" when it hands K credits back. Stops after --timeout
seconds (the test kills it by PID sooner).
"""
import argparse
import sys

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


class Listener(MessagingHandler):
    def __init__(self, a):
        super().__init__(prefetch=100, auto_accept=True)
        self.a = a
        self.sent = 0

    def on_start(self, event):
        event.container.listen("127.0.0.1:%d" % self.a.port)
        print("listening", flush=True)
        event.container.schedule(self.a.timeout, self)

    def on_timer_task(self, event):
        event.container.stop()

    def on_sendable(self, event):
        s = event.sender
        while s.credit > 0 and self.sent < self.a.count:
            self.sent += 1
            s.send(Message(id=self.sent, body="message %d" % self.sent))
            if self.sent == self.a.count:
                print("sent %d" % self.sent, flush=True)
        self.drain(s)

    def on_link_flow(self, event):
        if event.link.is_sender:
            self.drain(event.link)

    def drain(self, s):
        # Proton leaves answering a drain to the application: with nothing left to send,
        # give the rest of the credit back (the flow frame then says drain, credit 0).
        if s.drain_mode and s.credit > 0 and self.sent >= self.a.count:
            n = s.drained()
            print("drained %d" % n, flush=True)

    def on_message(self, event):
        print("id %s" % event.message.id, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["source", "sink"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    if a.mode == "sink":
        a.count = 0
    Container(Listener(a)).run()


if __name__ == "__main__":
    sys.exit(main())
