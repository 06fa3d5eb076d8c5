//! In-process single-flight: of the threads asking for one key at once, one (the
//! pilot) computes and the others wait for its value instead of computing too.
//!
//! A flight that lands without a value (a result that is not cached, or a
//! panic) does not release a herd: each passenger joins again, so the next
//! computation of the key is again one pilot's, with the others waiting. A
//! thread that asks for a key it is itself computing (a re-entrant call) is
//! told so instead of waiting for itself.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::key::{Key, KeyMap};

/// The computations under way in one function, by key.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<KeyMap<Arc<Flight>>>>);

#[derive(Default)]
pub(crate) struct Flight {
    /// The thread computing (see [`current_thread`]).
    pilot: AtomicU64,
    landing: Mutex<Landing>,
    landed: Condvar,
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
    /// This very thread computes it further up its stack.
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

/// A number for the calling thread, unique in the process (never zero).
fn current_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

impl Flights {
    pub fn join(&self, key: Key) -> Join {
        let mut flights = lock(&self.0);
        if let Some(flight) = flights.get(&key) {
            if flight.pilot.load(Ordering::Relaxed) == current_thread() {
                return Join::Reentrant;
            }
            return Join::Passenger(Arc::clone(flight));
        }
        let flight = Arc::new(Flight {
            pilot: AtomicU64::new(current_thread()),
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
    /// Waits until the pilot lands or `deadline` passes.
    pub fn wait(&self, deadline: Option<Instant>) -> Landed {
        let mut landing = lock(&self.landing);
        loop {
            match &*landing {
                Landing::Value(value) => return Landed::Value(Arc::clone(value)),
                Landing::Nothing => return Landed::Nothing,
                Landing::InAir => {}
            }
            landing = match deadline {
                None => self.landed.wait(landing).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return Landed::TimedOut;
                    };
                    let waited = self.landed.wait_timeout(landing, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

impl Pilot {
    /// Makes the calling thread the one computing (for a pilot handed to a
    /// background thread).
    pub fn board(&self) {
        self.flight.pilot.store(current_thread(), Ordering::Relaxed);
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
        self.flight.landed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;

    fn key(n: u8) -> Key {
        Key::new("flight::test", &n).unwrap()
    }

    fn pilot(flights: &Flights, n: u8) -> Pilot {
        match flights.join(key(n)) {
            Join::Pilot(pilot) => pilot,
            _ => panic!("the first caller must pilot"),
        }
    }

    /// Joins from another thread, which is then a passenger.
    fn passenger(flights: &Flights, n: u8) -> Arc<Flight> {
        let flights = flights.clone();
        match std::thread::spawn(move || flights.join(key(n))).join().unwrap() {
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
            move || matches!(flights.join(key(2)), Join::Pilot(_))
        });
        assert!(other.join().unwrap(), "other keys fly on their own");
        let waiter = std::thread::spawn(move || flight.wait(None));
        pilot.land(Some(Arc::from(&b"v"[..])));
        assert_eq!(waiter.join().unwrap(), Landed::Value(Arc::from(&b"v"[..])));
        assert!(
            matches!(flights.join(key(1)), Join::Pilot(_)),
            "a landed flight is over"
        );
    }

    #[test]
    fn the_pilots_own_thread_is_told_it_is_reentrant() {
        let flights = Flights::default();
        let pilot = pilot(&flights, 1);
        assert!(matches!(flights.join(key(1)), Join::Reentrant));
        // Handed to another thread, the flight is that thread's.
        let flights2 = flights.clone();
        std::thread::spawn(move || {
            pilot.board();
            assert!(matches!(flights2.join(key(1)), Join::Reentrant));
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
        assert_eq!(flight.wait(None), Landed::Nothing);
        assert!(pilot_thread.join().is_err());
    }

    #[test]
    fn waiting_stops_at_the_deadline() {
        let flights = Flights::default();
        let _pilot = pilot(&flights, 1);
        let flight = passenger(&flights, 1);
        assert_eq!(
            flight.wait(Some(Instant::now() + Duration::from_millis(1))),
            Landed::TimedOut
        );
    }
}
