//! Encodes a message into an AMQP transfer frame and decodes it back.

use amqp_proto::frame::{encode_frame, Decoded, FrameBody, FrameDecoder};
use amqp_proto::message::Message;
use amqp_proto::performatives::{Performative, Transfer};
use amqp_proto::Encode;
use bytes::{Bytes, BytesMut};

fn main() {
    let msg = Message::builder()
        .message_id("hello-1")
        .to("examples")
        .body("Hello World!")
        .build();
    let transfer = Performative::Transfer(Transfer {
        handle: 0,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"0")),
        message_format: Some(0),
        ..Transfer::default()
    });
    let mut wire = BytesMut::new();
    encode_frame(&mut wire, 0, &transfer, &msg.to_bytes());
    println!("frame: {} bytes", wire.len());
    let mut decoder = FrameDecoder::new(64 * 1024);
    if let Ok(Decoded::Frame(frame)) = decoder.decode(&mut wire) {
        if let FrameBody::Amqp { payload, .. } = frame.body {
            match Message::decode(&payload) {
                Ok(m) => println!("{}", m.body_str().unwrap_or("?")),
                Err(e) => eprintln!("decode failed: {e}"),
            }
        }
    }
}
