//! In-process single-flight: of the threads asking for one key at once, one (the
//! pilot) computes and the others wait for its value instead of computing too.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::key::{Key, KeyMap};

/// The computations under way in one function, by key.
#[derive(Clone, Default)]
pub(crate) struct Flights(Arc<Mutex<KeyMap<Arc<Flight>>>>);

#[derive(Default)]
pub(crate) struct Flight {
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
    pub fn join(&self, key: Key) -> Join {
        let mut flights = lock(&self.0);
        if let Some(flight) = flights.get(&key) {
            return Join::Passenger(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        flights.insert(key, Arc::clone(&flight));
        Join::Pilot(Pilot {
            flights: self.clone(),
            key,
            flight,
        })
    }
}

impl Flight {
    /// Waits until the pilot lands or `deadline` passes; the value if there is one.
    pub fn wait(&self, deadline: Option<Instant>) -> Option<Arc<[u8]>> {
        let mut landing = lock(&self.landing);
        loop {
            match &*landing {
                Landing::Value(value) => return Some(Arc::clone(value)),
                Landing::Nothing => return None,
                Landing::InAir => {}
            }
            landing = match deadline {
                None => self.landed.wait(landing).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    let waited = self.landed.wait_timeout(landing, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

impl Pilot {
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

    #[test]
    fn passengers_get_the_pilots_value() {
        let flights = Flights::default();
        let Join::Pilot(pilot) = flights.join(key(1)) else {
            panic!("first caller must pilot")
        };
        let Join::Passenger(flight) = flights.join(key(1)) else {
            panic!("second caller must wait")
        };
        assert!(
            matches!(flights.join(key(2)), Join::Pilot(_)),
            "other keys fly on their own"
        );
        let waiter = std::thread::spawn(move || flight.wait(None));
        pilot.land(Some(Arc::from(&b"v"[..])));
        assert_eq!(waiter.join().unwrap().as_deref(), Some(&b"v"[..]));
        assert!(
            matches!(flights.join(key(1)), Join::Pilot(_)),
            "a landed flight is over"
        );
    }

    #[test]
    fn a_panicking_pilot_releases_its_passengers_empty_handed() {
        let flights = Flights::default();
        let Join::Pilot(pilot) = flights.join(key(1)) else {
            panic!()
        };
        let Join::Passenger(flight) = flights.join(key(1)) else {
            panic!()
        };
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
        assert_eq!(flight.wait(None), None);
        assert!(pilot_thread.join().is_err());
    }

    #[test]
    fn waiting_stops_at_the_deadline() {
        let flights = Flights::default();
        let Join::Pilot(_pilot) = flights.join(key(1)) else {
            panic!()
        };
        let Join::Passenger(flight) = flights.join(key(1)) else {
            panic!()
        };
        assert_eq!(flight.wait(Some(Instant::now() + Duration::from_millis(1))), None);
    }
}
