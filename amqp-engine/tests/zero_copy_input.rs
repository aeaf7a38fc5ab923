//! Reads handed over by ownership ([`Connection::handle_input_owned`]) are not copied: a
//! reader that splits each read off one buffer gets transfer payloads that are slices of that
//! buffer, even when frames straddle reads.

mod util;

use amqp_engine::*;
use amqp_proto::message::Message;
use bytes::BytesMut;
use util::*;

#[test]
fn payloads_share_the_readers_buffer_across_split_reads() {
    let mut p = Pair::default_pair();
    let (_s, sender, _rl) = p.open_sender(10);
    for i in 0..3 {
        let m = Message::new("x".repeat(3000 + i));
        p.client.send(sender, &m, SendOptions::default()).unwrap();
    }
    let wire = p.client_output();
    // The reader's buffer: every read is split off it, in odd sizes that cut frames apart.
    let mut buf = BytesMut::with_capacity(wire.len());
    buf.extend_from_slice(&wire);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    while !buf.is_empty() {
        let chunk = buf.split_to(buf.len().min(1001));
        p.server.handle_input_owned(chunk, p.now).unwrap();
    }
    let mut events = Vec::new();
    while let Some(e) = p.server.poll_event() {
        events.push(e);
    }
    let ds = deliveries(&events);
    assert_eq!(ds.len(), 3);
    for d in &ds {
        let at = d.payload.as_ptr() as usize;
        assert!(
            range.contains(&at) && range.contains(&(at + d.payload.len() - 1)),
            "delivery {:?}: its payload was copied out of the reader's buffer",
            d.delivery
        );
        assert!(Message::decode(&d.payload).is_ok());
    }
}
