//! In-flight dedup: one run per cache key at a time, shared by every build
//! in the process that needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci::Digest;
use tokio::sync::watch;

use crate::error::{SharedError, StoreError};
use crate::event::{Audience, Watcher};

/// A finished run (or a record another build wrote meanwhile).
#[derive(Debug, Clone)]
pub(crate) struct Landed<O> {
    pub output: O,
    pub result_key: Digest,
    /// Taken from a record that appeared after the waiting build looked.
    pub cached: bool,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum FlightError {
    Cancelled,
    Run(SharedError),
    Save(SharedError),
    Store(Arc<StoreError>),
}

pub(crate) type Outcome<O> = Result<Landed<O>, FlightError>;

/// The op ended without an outcome: it panicked, or its runtime shut down.
#[derive(Debug, thiserror::Error)]
#[error("the op stopped without a result (it panicked or its runtime shut down)")]
pub(crate) struct Lost;

/// One run of a cache key's op.
#[derive(Debug)]
pub(crate) struct Flight<O> {
    pub audience: Arc<Audience>,
    done: watch::Sender<Option<Outcome<O>>>,
}

/// The flights under way, by cache key.
#[derive(Debug)]
pub(crate) struct Flights<O> {
    map: Mutex<HashMap<Digest, Arc<Flight<O>>>>,
}

impl<O: Clone + Send + Sync + 'static> Flights<O> {
    pub fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Digest, Arc<Flight<O>>>> {
        // Every change under this lock is a single insert or remove.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the run of `key`: join the one under way, or make a new one,
    /// which the caller must launch (the second element).
    pub fn join(&self, key: &Digest, watcher: Watcher) -> (Ticket<O>, Option<Arc<Flight<O>>>) {
        let mut map = self.map();
        if let Some(flight) = map.get(key)
            && let Some(ticket) = Ticket::new(flight, watcher.clone())
        {
            return (ticket, None);
        }
        // None under way, or the one there was cancelled: start afresh.
        let flight = Arc::new(Flight {
            audience: Arc::new(Audience::default()),
            done: watch::Sender::new(None),
        });
        map.insert(key.clone(), flight.clone());
        let ticket = Ticket::new(&flight, watcher).expect("invariant: a new flight is open");
        (ticket, Some(flight))
    }

    /// Publish the outcome of `flight`, after taking it out of the map (a
    /// build that looks afterwards finds the record, or starts a new run).
    pub fn land(&self, key: &Digest, flight: &Arc<Flight<O>>, outcome: Outcome<O>) {
        {
            let mut map = self.map();
            if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
                map.remove(key);
            }
        }
        flight.audience.finish();
        flight.done.send_replace(Some(outcome));
    }
}

/// Lands a flight as lost if its task ends without landing it (a panic),
/// so its waiters never hang.
pub(crate) struct LandGuard<'a, O: Clone + Send + Sync + 'static> {
    pub flights: &'a Flights<O>,
    pub key: &'a Digest,
    pub flight: &'a Arc<Flight<O>>,
    pub armed: bool,
}

impl<O: Clone + Send + Sync + 'static> LandGuard<'_, O> {
    pub fn land(mut self, outcome: Outcome<O>) {
        self.armed = false;
        self.flights.land(self.key, self.flight, outcome);
    }
}

impl<O: Clone + Send + Sync + 'static> Drop for LandGuard<'_, O> {
    fn drop(&mut self) {
        if self.armed {
            let lost = FlightError::Run(Arc::new(Lost));
            self.flights.land(self.key, self.flight, Err(lost));
        }
    }
}

/// One build's place in a flight's audience. Dropping it leaves; the last
/// to leave an unfinished flight cancels it.
#[derive(Debug)]
pub(crate) struct Ticket<O> {
    flight: Arc<Flight<O>>,
    id: u64,
    rx: watch::Receiver<Option<Outcome<O>>>,
    active: bool,
}

impl<O: Clone> Ticket<O> {
    fn new(flight: &Arc<Flight<O>>, watcher: Watcher) -> Option<Self> {
        let id = flight.audience.join(watcher)?;
        Some(Ticket {
            flight: flight.clone(),
            id,
            rx: flight.done.subscribe(),
            active: true,
        })
    }

    /// The flight's outcome.
    pub async fn wait(&mut self) -> Outcome<O> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .expect("invariant: wait_for returned a value it checked"),
            // The flight was dropped without landing; the guard prevents it.
            Err(_) => Err(FlightError::Run(Arc::new(Lost))),
        }
    }

    /// Leave. If that cancelled the flight, wait until its op has stopped,
    /// so nothing this build started still runs after it returns.
    pub async fn leave(mut self) {
        self.active = false;
        if self.flight.audience.leave(self.id) {
            let _ = self.rx.wait_for(Option::is_some).await;
        }
    }
}

impl<O> Drop for Ticket<O> {
    fn drop(&mut self) {
        if self.active {
            self.flight.audience.leave(self.id);
        }
    }
}
