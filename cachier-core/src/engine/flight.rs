//! In-process single-flight: of the threads asking for one key at once, one (the
//! pilot) computes and the others wait for its value instead of computing too.
//!
//! A flight that lands without a value (a result that is not cached, or a
//! panic) does not release a herd: each passenger joins again, so the next
//! computation of the key is again one pilot's, with the others waiting. A
//! thread that asks for a key it is itself computing (a re-entrant call) is
//! told so instead of waiting for itself.
//!
//! A passenger waits as its [`Mode`] says: a thread blocks, a task yields.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use event_listener::Event;

use super::mode::Mode;
use crate::key::{Key, KeyMap};

/// The computations under way in one function, by key.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<KeyMap<Arc<Flight>>>>);

#[derive(Default)]
pub(crate) struct Flight {
    /// The caller computing (see [`Mode::caller`]).
    pilot: AtomicU64,
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
    /// This very caller computes it further up its stack.
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
    flight: Arc<Flight>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flights {
    /// Joins the flight of `key` as `caller` (see [`Mode::caller`]).
    pub fn join(&self, key: Key, caller: u64) -> Join {
        let mut flights = lock(&self.0);
        if let Some(flight) = flights.get(&key) {
            if flight.pilot.load(Ordering::Relaxed) == caller {
                return Join::Reentrant;
            }
            return Join::Passenger(Arc::clone(flight));
        }
        let flight = Arc::new(Flight {
            pilot: AtomicU64::new(caller),
            ..Flight::default()
        });
        flights.insert(key, Arc::clone(&flight));
        Join::Pilot(Pilot {
            flights: self.clone(),
            key,
            flight,
        })
    }
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
    /// Makes `caller` the one computing (for a pilot handed to a background
    /// thread or task).
    pub fn board(&self, caller: u64) {
        self.flight.pilot.store(caller, Ordering::Relaxed);
    }

    /// Hands `value` (if any) to the waiting threads and ends the flight.
    pub fn land(self, value: Option<Arc<[u8]>>) {
        if let Some(value) = value {
            *lock(&self.flight.landing) = Landing::Value(value);
        }
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        lock(&self.flights.0).remove(&self.key);
        let mut landing = lock(&self.flight.landing);
        if matches!(*landing, Landing::InAir) {
            *landing = Landing::Nothing;
        }
        drop(landing);
        self.flight.landed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::time::Duration;

    use super::super::mode::{Blocking, block_on, thread_number};
    use super::*;

    fn join(flights: &Flights, n: u8) -> Join {
        flights.join(key(n), thread_number())
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
    fn the_pilots_own_thread_is_told_it_is_reentrant() {
        let flights = Flights::default();
        let pilot = pilot(&flights, 1);
        assert!(matches!(join(&flights, 1), Join::Reentrant));
        // Handed to another thread, the flight is that thread's.
        let flights2 = flights.clone();
        std::thread::spawn(move || {
            pilot.board(thread_number());
            assert!(matches!(join(&flights2, 1), Join::Reentrant));
        })
        .join()
        .unwrap();
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
