#!/usr/bin/env python3
"""python-qpid-proton on both sides of the blocking API (tests/blocking_python.rs).

    proton_blocking.py client --url amqp://127.0.0.1:P --count N
        Proton's BlockingConnection against our broker: sends N messages to queue
        "blocking" (each send blocks until accepted), receives them back with credit 10,
        accepting each, releases one and receives it again, then a request/reply round trip
        through a dynamic receiver (the reply sent to its address by a second sender).
        Prints one JSON summary line.

    proton_blocking.py broker --port P
        A small queue broker written on Proton's Container for our BlockingConnection to
        talk to: queues by address, created on demand; dynamic receivers get a fresh
        queue; messages are accepted on arrival and handed out to receivers with credit, in
        order; a released or modified message goes back to the front of its queue. Prints
        "listening" once it listens; stops after --timeout seconds.
"""
import argparse
import collections
import json
import sys
import uuid

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container
from proton.utils import BlockingConnection


def client(a):
    out = {"sent": 0, "accepted": 0, "received": [], "redelivered": None, "reply": None}
    conn = BlockingConnection(a.url, timeout=a.timeout)
    sender = conn.create_sender("blocking")
    for i in range(a.count):
        sender.send(Message(id=i, body="m%d" % i))
        out["sent"] += 1
        out["accepted"] += 1  # send() raises unless the outcome is accepted
    receiver = conn.create_receiver("blocking", credit=10)
    for _ in range(a.count):
        m = receiver.receive(timeout=a.timeout)
        out["received"].append(m.body)
        receiver.accept()
    sender.send(Message(body="again"))
    receiver.receive(timeout=a.timeout)
    receiver.release()
    m = receiver.receive(timeout=a.timeout)
    out["redelivered"] = m.body
    receiver.accept()
    replies = conn.create_receiver(None, dynamic=True, credit=1)
    reply_to = replies.remote_source.address
    conn.create_sender(reply_to).send(Message(body="pong"))
    out["reply"] = replies.receive(timeout=a.timeout).body
    replies.accept()
    conn.close()
    out["timed_out"] = False
    print(json.dumps(out))


class Broker(MessagingHandler):
    def __init__(self, a):
        super().__init__(prefetch=0, auto_accept=False)
        self.a = a
        self.queues = collections.defaultdict(collections.deque)
        self.consumers = collections.defaultdict(list)

    def on_start(self, event):
        self.acceptor = event.container.listen("127.0.0.1:%d" % self.a.port)
        event.container.schedule(self.a.timeout, self)
        print("listening", flush=True)

    def on_timer_task(self, event):
        event.container.stop()

    def on_link_opening(self, event):
        link = event.link
        if link.is_sender:
            if link.remote_source.dynamic:
                address = "dyn-" + str(uuid.uuid4())
                link.source.address = address
            else:
                address = link.remote_source.address
                link.source.address = address
            self.consumers[address].append(link)
        else:
            link.target.address = link.remote_target.address
            link.flow(100)

    def forget(self, links):
        for consumers in self.consumers.values():
            for link in links:
                if link in consumers:
                    consumers.remove(link)

    def on_link_closing(self, event):
        self.forget([event.link])

    def on_connection_closing(self, event):
        self.forget(self.links_of(event.connection))

    def on_disconnected(self, event):
        self.forget(self.links_of(event.connection))

    def links_of(self, conn):
        links = []
        link = conn.link_head(0)
        while link:
            links.append(link)
            link = link.next(0)
        return links

    def on_sendable(self, event):
        self.dispatch(event.link.source.address)

    def on_message(self, event):
        address = event.link.target.address or event.message.address
        self.queues[address].append(event.message)
        event.delivery.update(event.delivery.ACCEPTED)
        event.delivery.settle()
        if event.link.credit < 50:
            event.link.flow(100 - event.link.credit)
        self.dispatch(address)

    def on_released(self, event):
        # Back to the front of its queue.
        d = event.delivery
        if getattr(d, "broker_message", None) is not None:
            self.queues[d.broker_address].appendleft(d.broker_message)
            self.dispatch(d.broker_address)

    def dispatch(self, address):
        q = self.queues[address]
        for link in self.consumers.get(address, []):
            while q and link.credit > 0:
                m = q.popleft()
                d = link.send(m)
                d.broker_message = m
                d.broker_address = address


def broker(a):
    Container(Broker(a)).run()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["client", "broker"])
    p.add_argument("--url")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    if a.mode == "client":
        client(a)
    else:
        broker(a)


if __name__ == "__main__":
    sys.exit(main())
