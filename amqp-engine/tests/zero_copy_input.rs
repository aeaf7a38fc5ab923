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

#[test]
fn after_a_frame_straddles_two_buffers_the_second_is_read_in_place() {
    let mut p = Pair::default_pair();
    let (_s, sender, _rl) = p.open_sender(10);
    for i in 0..6 {
        let m = Message::new("y".repeat(3000 + i));
        p.client.send(sender, &m, SendOptions::default()).unwrap();
    }
    let wire = p.client_output();
    // Two reads from two separate buffers (a reader that took a fresh buffer), cut inside a
    // frame.
    let cut = wire.len() / 3;
    let first = BytesMut::from(&wire[..cut]);
    let second = BytesMut::from(&wire[cut..]);
    let range = second.as_ptr() as usize..second.as_ptr() as usize + second.len();
    p.server.handle_input_owned(first, p.now).unwrap();
    p.server.handle_input_owned(second, p.now).unwrap();
    let mut events = Vec::new();
    while let Some(e) = p.server.poll_event() {
        events.push(e);
    }
    let ds = deliveries(&events);
    assert_eq!(ds.len(), 6);
    // Only the frame cut in two is copied: the last ones are slices of the second buffer.
    for d in &ds[4..] {
        let at = d.payload.as_ptr() as usize;
        assert!(
            range.contains(&at),
            "delivery {:?}: copied out of the second read's buffer",
            d.delivery
        );
        assert!(Message::decode(&d.payload).is_ok());
    }
}
