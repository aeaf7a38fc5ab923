//! Cross-thread injection: an [`Injector`] hands application events from any thread to a
//! running container, whose handler receives each in
//! [`MessagingHandler::on_application_event`](super::MessagingHandler::on_application_event)
//! (Proton's `EventInjector` and `ApplicationEvent`).
//!
//! The queue is here, sans-IO; waking the driver is the driver's part: it installs a wake
//! function through [`IoCore::set_waker`](super::IoCore::set_waker), which every
//! [`Injector::inject`] calls after queueing.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// What an application event carries: any `Send` value, downcast by the handler
/// (`payload.downcast::<MyCommand>()`).
pub type Payload = Box<dyn Any + Send>;

/// A function that makes a driver poll its container again, from any thread.
pub type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// The container's side: payloads waiting to be dispatched and the driver's wake function.
#[derive(Default)]
pub(super) struct Inbox {
    queue: Mutex<VecDeque<Payload>>,
    wake: Mutex<Option<WakeFn>>,
}

/// Locks a mutex; a poisoned one (a thread panicked while injecting) is still consistent, as
/// every critical section is a single push, take or replace.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inbox {
    pub(super) fn set_wake(&self, wake: WakeFn) {
        *lock(&self.wake) = Some(wake);
    }

    /// Everything injected so far, in order.
    pub(super) fn take(&self) -> VecDeque<Payload> {
        std::mem::take(&mut *lock(&self.queue))
    }
}

/// A cloneable, `Send` handle that delivers application events to a container from any
/// thread: get one from [`ContainerContext::injector`](super::ContainerContext::injector)
/// before running the container (or inside a callback) and move it to other threads.
///
/// Each [`inject`](Self::inject) wakes the container, which calls the handler's
/// [`on_application_event`](super::MessagingHandler::on_application_event) with the payload,
/// in the order injected. The container's run loop does not wait for injectors: once it is
/// done (stopped, or nothing left to do) and dropped, `inject` fails and hands the payload
/// back.
#[derive(Clone)]
pub struct Injector {
    inbox: Weak<Inbox>,
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("container_alive", &(self.inbox.strong_count() > 0))
            .finish()
    }
}

impl Injector {
    pub(super) fn new(inbox: &Arc<Inbox>) -> Self {
        Injector {
            inbox: Arc::downgrade(inbox),
        }
    }

    /// Queues `payload` for the handler's `on_application_event` and wakes the container.
    /// Fails, returning the payload, when the container no longer exists.
    pub fn inject<T: Any + Send>(&self, payload: T) -> Result<(), InjectError> {
        let Some(inbox) = self.inbox.upgrade() else {
            return Err(InjectError {
                payload: Box::new(payload),
            });
        };
        lock(&inbox.queue).push_back(Box::new(payload));
        let wake = lock(&inbox.wake).clone();
        if let Some(wake) = wake {
            wake();
        }
        Ok(())
    }
}

/// [`Injector::inject`] failed: the container is gone. Holds the payload that was not
/// delivered.
pub struct InjectError {
    /// The payload, boxed.
    pub payload: Payload,
}

impl fmt::Debug for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectError").finish_non_exhaustive()
    }
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the container has finished; the application event was not delivered")
    }
}

impl std::error::Error for InjectError {}
