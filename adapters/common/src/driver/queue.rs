//! The driver's channels: an unbounded multi-producer, single-consumer queue over a
//! `VecDeque` behind a mutex. Its storage is reused, so once it has grown to the traffic,
//! passing a read, a write buffer or a wake-up allocates nothing (a linked-list channel such as
//! `futures::channel::mpsc` allocates a node per item, i.e. per system call here).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// A queue that has grown past this many slots gives them back once it drains empty.
const KEEP_SLOTS: usize = 1024;

struct Shared<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The lock guards plain data that no panic leaves half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side; cloned for every task that reports to the receiver.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side: the driver, or a transport's writer.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A new queue.
pub(crate) fn queue<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        waker: AtomicWaker::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queues `item` (there is no bound: the transports' own back-pressure limits what waits
    /// here), or gives it back when the receiver is gone.
    pub(crate) fn unbounded_send(&self, item: T) -> Result<(), T> {
        let mut st = self.shared.lock();
        if !st.receiver_alive {
            return Err(item);
        }
        let was_empty = st.items.is_empty();
        st.items.push_back(item);
        drop(st);
        // A receiver waits only after it saw the queue empty: later items need no wake-up.
        if was_empty {
            self.shared.waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.shared.waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut st = self.shared.lock();
        let item = st.items.pop_front();
        if st.items.is_empty() && st.items.capacity() > KEEP_SLOTS {
            st.items.shrink_to(KEEP_SLOTS);
        }
        item
    }

    /// The next item; `None` once every sender is gone and the queue is empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        self.shared.waker.register(cx.waker());
        let mut st = self.shared.lock();
        match st.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if st.senders == 0 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Waits for the next item; `None` once every sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut st = self.shared.lock();
            st.receiver_alive = false;
            std::mem::take(&mut st.items)
        };
        // Dropped outside the lock: an item may own a sender of this very queue.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn items_arrive_in_order_and_the_queue_ends_with_its_last_sender() {
        let (tx, mut rx) = queue();
        let tx2 = tx.clone();
        tx.unbounded_send(1).unwrap();
        tx2.unbounded_send(2).unwrap();
        assert_eq!(rx.try_recv(), Some(1));
        drop(tx);
        assert_eq!(block_on(rx.recv()), Some(2));
        drop(tx2);
        assert_eq!(block_on(rx.recv()), None);
    }

    #[test]
    fn a_send_to_a_dropped_receiver_gives_the_item_back() {
        let (tx, rx) = queue();
        drop(rx);
        assert_eq!(tx.unbounded_send(7), Err(7));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_from_another_thread() {
        let (tx, mut rx) = queue();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.unbounded_send("late").unwrap();
        });
        assert_eq!(block_on(rx.recv()), Some("late"));
        t.join().unwrap();
    }

    #[test]
    fn a_drained_queue_gives_back_what_a_burst_grew() {
        let (tx, mut rx) = queue();
        for i in 0..10 * KEEP_SLOTS {
            tx.unbounded_send(i).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert!(rx.shared.lock().items.capacity() <= KEEP_SLOTS);
    }
}
