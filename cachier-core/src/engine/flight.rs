//! In-process single-flight: of the threads asking for one key at once, one (the
//! pilot) computes and the others wait for its value instead of computing too.
//!
//! A flight that lands without a value (a result that is not cached, or a
//! panic) does not release a herd: each passenger joins again, so the next
//! computation of the key is again one pilot's, with the others waiting.
//!
//! A call made from within the body computing its own key (a re-entrant call)
//! is told so instead of waiting for itself: a body is marked as computing its
//! key while it is polled ([`computing`]), which tells a nested call apart from
//! a sibling call of the same thread or task (`tokio::join!`).
//!
//! A passenger waits as its [`Mode`] says: a thread blocks, a task yields.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use event_listener::Event;

use super::mode::Mode;
use crate::key::{Key, KeyMap};

/// The computations under way in one function, by key: each with the
/// flight its passengers wait on, made by the first passenger (a pilot
/// flying alone allocates none).
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<KeyMap<Option<Arc<Flight>>>>>);

#[derive(Default)]
pub(crate) struct Flight {
    landing: Mutex<Landing>,
    landed: Event,
}

#[derive(Default)]
enum Landing {
    #[default]
    InAir,
    /// The encoded value the pilot computed.
    Value(Arc<[u8]>),
    /// The pilot finished with nothing to share (a result that is not cached, or a panic).
    Nothing,
}

pub(crate) enum Join {
    /// Nobody here computes this key: the caller must, and land the pilot after.
    Pilot(Pilot),
    /// Another thread computes it: wait for its value.
    Passenger(Arc<Flight>),
    /// The body being polled computes it, further up the stack.
    Reentrant,
}

/// What a passenger's wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Landed {
    /// The pilot's value.
    Value(Arc<[u8]>),
    /// The pilot had no value to share: join again.
    Nothing,
    /// The deadline passed first.
    TimedOut,
}

/// The duty of computing one key. Dropping it without [`Pilot::land`] (a result
/// that is not cached, or a panic unwinding) releases the waiting threads empty-handed.
pub(crate) struct Pilot {
    flights: Flights,
    key: Key,
    /// What [`land`](Pilot::land) hands over, once the flight ends.
    value: Option<Arc<[u8]>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flights {
    /// Joins the flight of `key`.
    pub fn join(&self, key: Key) -> Join {
        if COMPUTING.with(|computing| computing.borrow().contains(&(self.id(), key))) {
            return Join::Reentrant;
        }
        let mut flights = lock(&self.0);
        if let Some(flight) = flights.get_mut(&key) {
            return Join::Passenger(Arc::clone(flight.get_or_insert_default()));
        }
        flights.insert(key, None);
        Join::Pilot(Pilot {
            flights: self.clone(),
            key,
            value: None,
        })
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.0).addr()
    }
}

thread_local! {
    /// The keys whose bodies are being polled on this thread, by function.
    static COMPUTING: RefCell<Vec<(usize, Key)>> = const { RefCell::new(Vec::new()) };
}

/// `body`, marked as computing `key` while it is polled.
pub(crate) async fn computing<F: Future>(flights: &Flights, key: Key, body: F) -> F::Output {
    /// Unmarks when dropped, even if the body panics.
    struct Marked;
    impl Drop for Marked {
        fn drop(&mut self) {
            COMPUTING.with(|computing| computing.borrow_mut().pop());
        }
    }
    let mark = (flights.id(), key);
    let mut body = pin!(body);
    poll_fn(|cx| {
        COMPUTING.with(|computing| computing.borrow_mut().push(mark));
        let _marked = Marked;
        body.as_mut().poll(cx)
    })
    .await
}

impl Flight {
    fn landed(&self) -> Option<Landed> {
        match &*lock(&self.landing) {
            Landing::Value(value) => Some(Landed::Value(Arc::clone(value))),
            Landing::Nothing => Some(Landed::Nothing),
            Landing::InAir => None,
        }
    }

    /// Waits until the pilot lands or `deadline` passes.
    pub async fn wait<M: Mode>(&self, deadline: Option<Instant>) -> Landed {
        loop {
            if let Some(landed) = self.landed() {
                return landed;
            }
            // Listening before looking again: a landing in between is not missed.
            let listener = self.landed.listen();
            if let Some(landed) = self.landed() {
                return landed;
            }
            if !M::listen(listener, deadline).await {
                return self.landed().unwrap_or(Landed::TimedOut);
            }
        }
    }
}

impl Pilot {
    /// Hands `value` (if any) to the waiting threads and ends the flight.
    pub fn land(mut self, value: Option<Arc<[u8]>>) {
        self.value = value;
    }
}

impl Drop for Pilot {
    /// Ends the flight, then tells its passengers, if it has any: once the
    /// flight is out of the map, nobody else can board it. A pilot flying
    /// alone (every call of one thread) allocated nothing and takes no
    /// further lock.
    fn drop(&mut self) {
        let Some(Some(flight)) = lock(&self.flights.0).remove(&self.key) else {
            return;
        };
        *lock(&flight.landing) = match self.value.take() {
            Some(value) => Landing::Value(value),
            None => Landing::Nothing,
        };
        flight.landed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::time::Duration;

    use super::super::mode::{Blocking, block_on};
    use super::*;

    fn join(flights: &Flights, n: u8) -> Join {
        flights.join(key(n))
    }

    fn wait(flight: &Flight, deadline: Option<Instant>) -> Landed {
        block_on(flight.wait::<Blocking>(deadline))
    }

    fn key(n: u8) -> Key {
        Key::new("flight::test", &n).unwrap()
    }

    fn pilot(flights: &Flights, n: u8) -> Pilot {
        match join(flights, n) {
            Join::Pilot(pilot) => pilot,
            _ => panic!("the first caller must pilot"),
        }
    }

    /// Joins from another thread, which is then a passenger.
    fn passenger(flights: &Flights, n: u8) -> Arc<Flight> {
        let flights = flights.clone();
        match std::thread::spawn(move || join(&flights, n)).join().unwrap() {
            Join::Passenger(flight) => flight,
            _ => panic!("a second thread must wait"),
        }
    }

    #[test]
    fn passengers_get_the_pilots_value() {
        let flights = Flights::default();
        let pilot = pilot(&flights, 1);
        let flight = passenger(&flights, 1);
        let other = std::thread::spawn({
            let flights = flights.clone();
            move || matches!(join(&flights, 2), Join::Pilot(_))
        });
        assert!(other.join().unwrap(), "other keys fly on their own");
        let waiter = std::thread::spawn(move || wait(&flight, None));
        pilot.land(Some(Arc::from(&b"v"[..])));
        assert_eq!(waiter.join().unwrap(), Landed::Value(Arc::from(&b"v"[..])));
        assert!(
            matches!(join(&flights, 1), Join::Pilot(_)),
            "a landed flight is over"
        );
    }

    #[test]
    fn only_a_call_from_within_the_computing_body_is_reentrant() {
        let flights = Flights::default();
        let _pilot = pilot(&flights, 1);
        // The pilot's own thread, outside the body: a sibling call, which waits.
        assert!(matches!(join(&flights, 1), Join::Passenger(_)));
        let nested = block_on(computing(&flights, key(1), async {
            (
                matches!(join(&flights, 1), Join::Reentrant),
                matches!(join(&flights, 2), Join::Pilot(_)),
            )
        }));
        assert_eq!(
            nested,
            (true, true),
            "inside the body: its own key is re-entrant, others are not"
        );
        assert!(
            matches!(join(&flights, 1), Join::Passenger(_)),
            "the mark ends with the poll"
        );
    }

    #[test]
    fn a_panicking_pilot_releases_its_passengers_empty_handed() {
        let flights = Flights::default();
        let pilot = pilot(&flights, 1);
        let flight = passenger(&flights, 1);
        let barrier = Arc::new(Barrier::new(2));
        let pilot_thread = {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let _pilot = pilot;
                barrier.wait();
                panic!("the body failed");
            })
        };
        barrier.wait();
        assert_eq!(wait(&flight, None), Landed::Nothing);
        assert!(pilot_thread.join().is_err());
    }

    #[test]
    fn waiting_stops_at_the_deadline() {
        let flights = Flights::default();
        let _pilot = pilot(&flights, 1);
        let flight = passenger(&flights, 1);
        assert_eq!(
            wait(&flight, Some(Instant::now() + Duration::from_millis(1))),
            Landed::TimedOut
        );
    }
}
