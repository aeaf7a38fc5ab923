//! Deliveries: sending (one frame encoded in place, or split into frames queued behind the
//! peer's session window; abort) and receiving (single- and multi-frame deliveries, size
//! limits, the [`Event::Delivery`] handed to the application).

use super::*;
use amqp_proto::frame::transfer::{TransferFields, TransferHead};

/// A transfer frame waiting for the peer's session incoming window.
#[derive(Debug)]
pub(super) struct BlockedTransfer {
    pub(super) header: TransferHeader,
    pub(super) payload: Bytes,
}

/// An incoming delivery whose frames are still arriving (`more` set).
#[derive(Debug)]
pub(super) struct Partial {
    pub(super) number: u32,
    pub(super) tag: Bytes,
    pub(super) format: u32,
    pub(super) settled: bool,
    pub(super) state: Option<DeliveryState>,
    pub(super) first: Option<Bytes>,
    pub(super) buf: BytesMut,
    pub(super) aborted: bool,
}

/// Encoded fields of a transfer frame header, kept for frames blocked on the session window.
#[derive(Debug, Clone)]
pub(super) struct TransferHeader {
    pub(super) handle: u32,
    /// The delivery this frame belongs to (on the wire only in its first frame).
    pub(super) number: u32,
    pub(super) delivery_id: Option<u32>,
    pub(super) tag: Option<Bytes>,
    pub(super) format: u32,
    pub(super) settled: bool,
    pub(super) more: bool,
    pub(super) aborted: bool,
}

/// Delivery tags: 8-byte counters on the stack, written straight into the frame.
fn tag_bytes(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

impl Connection {
    pub(super) fn on_transfer(
        &mut self,
        sid: SessionId,
        t: TransferFields,
        state: Option<DeliveryState>,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        let max_msg = self.config.max_message_size;
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        if s.local == EndpointState::Closed {
            return Ok(());
        }
        let Some(half_used) = s.take_incoming_frame() else {
            return self.session_error(
                sid,
                condition::WINDOW_VIOLATION,
                "transfer beyond the session incoming-window".into(),
            );
        };
        if half_used && !s.flow_dirty {
            s.flow_dirty = true;
            self.dirty_sessions.push(sid);
        }
        let Some(&lid) = s.remote_handles.get(&t.handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("transfer on unattached handle {}", t.handle),
            );
        };
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        if l.role != Role::Receiver {
            return self.session_error(
                sid,
                condition::NOT_ALLOWED,
                "transfer on a link where we are the sender".into(),
            );
        }
        if l.local == EndpointState::Closed {
            return Ok(());
        }
        let more = t.more.unwrap_or(false);
        let aborted = t.aborted.unwrap_or(false);
        if l.partial.is_none() {
            if l.discarding {
                if !more {
                    l.discarding = false;
                }
                return Ok(());
            }
            let Some(number) = t.delivery_id else {
                return self.session_error(
                    sid,
                    condition::NOT_ALLOWED,
                    "first transfer of a delivery without delivery-id".into(),
                );
            };
            if !l.take_incoming() {
                self.link_error(
                    lid,
                    condition::TRANSFER_LIMIT_EXCEEDED,
                    "transfer without link credit".into(),
                );
                return Ok(());
            }
            if aborted {
                // Aborted in its first frame: nothing to deliver, but it used its credit.
                self.events.push_back(Event::Aborted {
                    delivery: DeliveryId { link: lid, number },
                });
                return Ok(());
            }
            if !more {
                // A whole delivery in one frame (the common case): deliver it directly.
                return self.deliver(
                    sid,
                    lid,
                    number,
                    t.delivery_tag.unwrap_or_default(),
                    t.message_format.unwrap_or(0),
                    t.settled.unwrap_or(false),
                    state,
                    payload,
                );
            }
            let partial = Partial {
                number,
                tag: t.delivery_tag.unwrap_or_default(),
                format: t.message_format.unwrap_or(0),
                settled: t.settled.unwrap_or(false),
                state,
                first: Some(payload),
                buf: BytesMut::new(),
                aborted: false,
            };
            l.partial = Some(partial);
        } else if let Some(p) = l.partial.as_mut() {
            if t.settled == Some(true) {
                p.settled = true;
            }
            if aborted {
                p.aborted = true;
            } else {
                if let Some(first) = p.first.take() {
                    p.buf.reserve(first.len() + payload.len());
                    p.buf.extend_from_slice(&first);
                }
                let limit = l.max_message_size.min(max_msg);
                if (p.buf.len() + payload.len()) as u64 > limit {
                    let n = p.buf.len() + payload.len();
                    self.link_error(
                        lid,
                        condition::MESSAGE_SIZE_EXCEEDED,
                        format!("message of at least {n} bytes exceeds max-message-size {limit}"),
                    );
                    if more {
                        if let Some(l) = self.links.get_mut(lid.0) {
                            l.discarding = true;
                        }
                    }
                    return Ok(());
                }
                p.buf.extend_from_slice(&payload);
            }
        }
        if more && !aborted {
            // A first frame that is itself over the limit.
            if let Some(p) = l.partial.as_ref() {
                let size = p.first.as_ref().map_or(p.buf.len(), Bytes::len) as u64;
                let limit = l.max_message_size.min(max_msg);
                if size > limit {
                    self.link_error(
                        lid,
                        condition::MESSAGE_SIZE_EXCEEDED,
                        format!("message exceeds max-message-size {limit}"),
                    );
                    if let Some(l) = self.links.get_mut(lid.0) {
                        l.discarding = true;
                    }
                }
            }
            return Ok(());
        }
        let Some(p) = l.partial.take() else {
            return Ok(());
        };
        let delivery = DeliveryId {
            link: lid,
            number: p.number,
        };
        if p.aborted {
            self.events.push_back(Event::Aborted { delivery });
            return Ok(());
        }
        let payload = match p.first {
            Some(b) => b,
            None => p.buf.freeze(),
        };
        self.deliver(
            sid, lid, p.number, p.tag, p.format, p.settled, p.state, payload,
        )
    }

    /// Delivers a complete incoming message: checks its size, records it as unsettled unless
    /// the sender settled it, and queues the [`Event::Delivery`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &mut self,
        sid: SessionId,
        lid: LinkId,
        number: u32,
        tag: Bytes,
        format: u32,
        settled: bool,
        state: Option<DeliveryState>,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        let max_msg = self.config.max_message_size;
        let Some(l) = self.links.get(lid.0) else {
            return Ok(());
        };
        if payload.len() as u64 > l.max_message_size.min(max_msg) {
            let limit = l.max_message_size.min(max_msg);
            self.link_error(
                lid,
                condition::MESSAGE_SIZE_EXCEEDED,
                format!(
                    "message of {} bytes exceeds max-message-size {limit}",
                    payload.len()
                ),
            );
            return Ok(());
        }
        if !settled {
            let s = self
                .sessions
                .get_mut(sid.0)
                .ok_or_else(|| framing("session vanished"))?;
            if !s.in_unsettled.insert(
                number,
                InEntry {
                    link: lid,
                    settle_pending: false,
                },
            ) {
                return self.session_error(
                    sid,
                    condition::NOT_ALLOWED,
                    format!("delivery-id {number} out of sequence"),
                );
            }
        }
        self.events.push_back(Event::Delivery(IncomingDelivery {
            link: lid,
            delivery: DeliveryId { link: lid, number },
            tag,
            message_format: format,
            settled,
            state,
            payload,
        }));
        Ok(())
    }

    /// Sends a message on a sender: `payload` is encoded once, straight into the output buffer
    /// (split into several transfer frames if larger than the peer's max-frame-size).
    pub fn send<P: Encode + ?Sized>(
        &mut self,
        lid: LinkId,
        payload: &P,
        opts: SendOptions<'_>,
    ) -> Result<DeliveryId, OpError> {
        self.send_inner(
            lid,
            payload.encoded_len(),
            opts,
            &mut |buf: &mut BytesMut| payload.encode(buf),
            None,
        )
    }

    /// Sends an already-encoded message (for example one a broker received), without re-encoding.
    pub fn send_bytes(
        &mut self,
        lid: LinkId,
        payload: Bytes,
        opts: SendOptions<'_>,
    ) -> Result<DeliveryId, OpError> {
        self.send_inner(
            lid,
            payload.len(),
            opts,
            &mut |buf: &mut BytesMut| buf.put_slice(&payload),
            Some(&payload),
        )
    }

    pub(super) fn send_inner(
        &mut self,
        lid: LinkId,
        len: usize,
        opts: SendOptions<'_>,
        write: &mut dyn FnMut(&mut BytesMut),
        owned: Option<&Bytes>,
    ) -> Result<DeliveryId, OpError> {
        self.check_usable()?;
        let sid = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?.session;
        if self
            .sessions
            .get(sid.0)
            .is_none_or(|s| s.local != EndpointState::Active)
        {
            // Ending a session detaches its links: nothing may follow the end.
            return Err(OpError::IllegalState("session not active"));
        }
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Sender {
            return Err(OpError::IllegalState("send on a receiver"));
        }
        if l.local != EndpointState::Active || l.remote != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        if l.credit == 0 {
            return Err(OpError::NoCredit);
        }
        if let Some(max) = l
            .remote_attach
            .as_ref()
            .and_then(|a| a.max_message_size)
            .filter(|&m| m > 0)
        {
            if len as u64 > max {
                return Err(OpError::MessageTooLarge { size: len, max });
            }
        }
        let settled = opts.settled || l.config.snd_settle_mode == Some(SenderSettleMode::Settled);
        l.take_outgoing();
        let tag_store = tag_bytes(l.next_tag);
        l.next_tag = l.next_tag.wrapping_add(1);
        let tag: &[u8] = opts.tag.unwrap_or(&tag_store);
        let handle = l.handle;
        let sid = l.session;
        let max_frame = self.remote_max_frame as usize;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        let number = s.next_delivery_id.incr().get();
        let ch = s.channel;
        if !settled {
            s.out_unsettled.insert(number, OutEntry { link: lid });
        }
        let head = TransferHead {
            handle,
            delivery_id: Some(number),
            delivery_tag: Some(tag),
            message_format: opts.message_format,
            settled,
            more: false,
        };
        let layout = head.layout();
        let size = layout.frame_len(len);
        if size <= max_frame && s.blocked.is_empty() && s.remote_incoming_window > 0 {
            // Fast path: one frame, encoded in place.
            s.take_outgoing_frame();
            let out = self.amqp_out(size);
            head.write_frame_header(out, &layout, ch, len);
            let before = out.len();
            write(out);
            debug_assert_eq!(out.len() - before, len);
            return Ok(DeliveryId { link: lid, number });
        }
        // Slow path: encode once, then split into frames (queued if the window is closed).
        let payload = match owned {
            Some(b) => b.clone(),
            None => {
                let mut b = BytesMut::with_capacity(len);
                write(&mut b);
                b.freeze()
            }
        };
        let tag = Bytes::copy_from_slice(tag);
        let mut offset = 0;
        let mut first = true;
        loop {
            let head = TransferHead {
                handle,
                delivery_id: first.then_some(number),
                delivery_tag: first.then_some(&tag[..]),
                message_format: if first { opts.message_format } else { 0 },
                settled,
                more: true,
            };
            let hl = head.layout().performative_len();
            let room = max_frame.saturating_sub(FRAME_HEADER_SIZE + hl).max(1);
            let end = (offset + room).min(payload.len());
            let more = end < payload.len();
            let header = TransferHeader {
                handle,
                number,
                delivery_id: first.then_some(number),
                tag: first.then(|| tag.clone()),
                format: opts.message_format,
                settled,
                more,
                aborted: false,
            };
            let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
            s.blocked.push_back(BlockedTransfer {
                header,
                payload: payload.slice(offset..end),
            });
            self.blocked_bytes += end - offset;
            offset = end;
            first = false;
            if !more {
                break;
            }
        }
        self.unblock_session(sid);
        Ok(DeliveryId { link: lid, number })
    }

    /// Writes frames that were waiting for the peer's session incoming window, then lets out
    /// link flows that were held back behind them.
    pub(super) fn unblock_session(&mut self, sid: SessionId) {
        self.write_blocked(sid);
        let Some(s) = self.sessions.get(sid.0) else {
            return;
        };
        for &lid in s.local_handles.values() {
            if let Some(l) = self.links.get(lid.0) {
                if l.flow_dirty
                    && l.role == Role::Sender
                    && !s.blocked.iter().any(|b| b.header.handle == l.handle)
                {
                    self.dirty_links.push(lid);
                }
            }
        }
    }

    pub(super) fn write_blocked(&mut self, sid: SessionId) {
        loop {
            let Some(s) = self.sessions.get_mut(sid.0) else {
                return;
            };
            if s.remote_incoming_window == 0 || s.local != EndpointState::Active {
                return;
            }
            let Some(b) = s.blocked.pop_front() else {
                return;
            };
            self.blocked_bytes = self.blocked_bytes.saturating_sub(b.payload.len());
            s.take_outgoing_frame();
            let ch = s.channel;
            let h = &b.header;
            if h.aborted {
                let t = Transfer {
                    handle: h.handle,
                    delivery_id: h.delivery_id,
                    delivery_tag: h.tag.clone(),
                    message_format: h.delivery_id.map(|_| h.format),
                    settled: Some(true),
                    aborted: Some(true),
                    ..Transfer::default()
                };
                self.write(ch, &t);
                continue;
            }
            let head = TransferHead {
                handle: h.handle,
                delivery_id: h.delivery_id,
                delivery_tag: h.tag.as_deref(),
                message_format: h.format,
                settled: h.settled,
                more: h.more,
            };
            let layout = head.layout();
            let out = self.amqp_out(layout.frame_len(b.payload.len()));
            head.write_frame_header(out, &layout, ch, b.payload.len());
            out.put_slice(&b.payload);
        }
    }

    /// Aborts a delivery whose frames are still waiting for the session window. Returns false if
    /// it has already been written completely.
    pub fn abort(&mut self, delivery: DeliveryId) -> Result<bool, OpError> {
        self.check_usable()?;
        let l = self
            .links
            .get(delivery.link.0)
            .ok_or(OpError::UnknownHandle)?;
        let sid = l.session;
        let handle = l.handle;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        // Frames of a delivery are contiguous in the queue (a delivery is queued whole).
        let first = s.blocked.iter().position(|b| {
            b.header.handle == handle && b.header.number == delivery.number && !b.header.aborted
        });
        let Some(start) = first else { return Ok(false) };
        let mut end = start;
        while end + 1 < s.blocked.len()
            && s.blocked[end + 1].header.handle == handle
            && s.blocked[end + 1].header.number == delivery.number
        {
            end += 1;
        }
        let head = s.blocked[start].header.clone();
        let freed: usize = s.blocked.drain(start..=end).map(|b| b.payload.len()).sum();
        self.blocked_bytes = self.blocked_bytes.saturating_sub(freed);
        // One aborted transfer replaces what was left: a continuation if its first frames are
        // on the wire, else a first frame (delivery-id and tag), so delivery-ids stay
        // sequential and the receiver counts the credit it used.
        let header = TransferHeader {
            settled: true,
            more: false,
            aborted: true,
            ..head
        };
        s.blocked.insert(
            start,
            BlockedTransfer {
                header,
                payload: Bytes::new(),
            },
        );
        s.out_unsettled.remove(delivery.number);
        self.unblock_session(sid);
        Ok(true)
    }
}
