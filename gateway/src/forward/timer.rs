//! A timer that belongs to a connection and is moved from one deadline to
//! the next, instead of a new timer for every request.
//!
//! A tokio timer is inserted into the runtime's timer wheel on its first
//! poll and taken out when dropped, both under the wheel's lock, for every
//! request (hyper's request-head timeout boxed its timer too; what it cost
//! is in `benches/README.md`). A registered timer moved to a later deadline
//! is one atomic exchange. Deadlines on one connection mostly grow (each
//! request's starts after the one before), so a connection that keeps its
//! timer pays the wheel about once, not per request; an earlier deadline
//! (a pooled upstream connection lent to a route with a shorter timeout)
//! is registered again under the lock, as a new timer would be. The client side
//! (the listener) keeps its request-head and send deadlines this way,
//! the upstream side (`forward::upstream`) the route's timeout.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A timer made on first use and moved after; idle until polled.
#[derive(Debug, Default)]
pub struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    /// No timer yet: nothing is allocated or registered until one is set.
    pub const fn new() -> Timer {
        Timer(None)
    }

    /// The timer, set to fire at `deadline`.
    pub fn at(&mut self, deadline: Instant) -> Pin<&mut Sleep> {
        let timer = self
            .0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut()
    }

    /// Whether `deadline` has passed, registering `cx` to be woken when it
    /// does.
    #[inline]
    pub fn poll_at(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self.at(deadline), cx)
    }

    /// The deadline last set, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.as_ref().map(|t| t.deadline())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_moved_timer_fires_at_its_new_deadline() {
        let mut timer = Timer::new();
        assert_eq!(timer.deadline(), None);
        let start = Instant::now();
        let first = start + Duration::from_secs(1);
        assert_eq!(timer.at(first).deadline(), first);
        let later = start + Duration::from_secs(5);
        timer.at(later).await;
        assert_eq!(Instant::now(), later);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_timer_set_again_fires_again() {
        let mut timer = Timer::new();
        let start = Instant::now();
        timer.at(start + Duration::from_secs(1)).await;
        let again = start + Duration::from_secs(3);
        std::future::poll_fn(|cx| timer.poll_at(again, cx)).await;
        assert_eq!(Instant::now(), again);
    }
}
