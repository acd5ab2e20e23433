//! Requests answered and in flight, counted on each worker in cells only
//! that worker writes, and added up when `/metrics` is scraped.
//!
//! Counting every request in one shared atomic would move its cache line
//! between the cores on every request (two workers on two cores: three such
//! moves a request, in flight up and down and the counter), a cost bare
//! actix-web does not have. Here a worker's cells stay in its core's cache;
//! only a scrape reads them from elsewhere.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::sync::lock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/delay/{ms}`), never the raw path, so that the
    /// number of series stays bounded whatever clients send.
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Every worker's counts, for the scrape.
#[derive(Debug, Default)]
pub struct RequestCounts {
    workers: Mutex<Vec<Arc<Cells>>>,
}

/// One worker's cells.
#[derive(Debug, Default)]
struct Cells {
    in_flight: AtomicI64,
    /// A cell for each label set this worker has answered.
    answered: Mutex<Vec<(RequestLabels, Cell)>>,
}

/// A count only one worker writes: an increment is a load and a store, not
/// a locked read-modify-write.
#[derive(Clone, Debug, Default)]
pub struct Cell(Arc<AtomicU64>);

impl Cell {
    pub fn bump(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// What a worker counts with.
pub struct WorkerCounts {
    cells: Arc<Cells>,
    /// Its cells by labels: a label set gets one cell however many paths
    /// lead to it.
    by_labels: RefCell<HashMap<(String, &'static str, u16), Cell, foldhash::fast::RandomState>>,
}

impl RequestCounts {
    /// The cells of a new worker.
    pub fn worker(&self) -> WorkerCounts {
        let cells = Arc::new(Cells::default());
        lock(&self.workers).push(cells.clone());
        WorkerCounts {
            cells,
            by_labels: RefCell::default(),
        }
    }

    /// Requests being handled now, on every worker.
    pub fn in_flight(&self) -> i64 {
        lock(&self.workers)
            .iter()
            .map(|c| c.in_flight.load(Ordering::Relaxed))
            .sum()
    }

    /// Requests answered, by labels, added up over the workers.
    fn answered(&self) -> BTreeMap<(String, String, u16), u64> {
        let mut sums = BTreeMap::new();
        for worker in lock(&self.workers).iter() {
            for (labels, cell) in lock(&worker.answered).iter() {
                let key = (labels.route.clone(), labels.method.clone(), labels.status);
                *sums.entry(key).or_insert(0) += cell.0.load(Ordering::Relaxed);
            }
        }
        sums
    }
}

impl WorkerCounts {
    pub fn started(&self) {
        let c = &self.cells.in_flight;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        let c = &self.cells.in_flight;
        c.store(c.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    /// The cell counting answers by route pattern, method and status.
    pub fn cell(&self, route: &str, method: &'static str, status: u16) -> Cell {
        let mut by_labels = self.by_labels.borrow_mut();
        // Made once per label set: the caller keeps the cell.
        let key = (route.to_owned(), method, status);
        if let Some(cell) = by_labels.get(&key) {
            return cell.clone();
        }
        let cell = Cell::default();
        let labels = RequestLabels {
            route: key.0.clone(),
            method: method.to_owned(),
            status,
        };
        lock(&self.cells.answered).push((labels, cell.clone()));
        by_labels.insert(key, cell.clone());
        cell
    }
}

impl Collector for RequestCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "http_requests",
                "HTTP requests answered, by route pattern, method and status",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for ((route, method, status), n) in self.answered() {
                let labels = RequestLabels {
                    route,
                    method,
                    status,
                };
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauge = ConstGauge::new(self.in_flight());
        gauge.encode(encoder.encode_descriptor(
            "http_requests_in_flight",
            "HTTP requests being handled now",
            None,
            gauge.metric_type(),
        )?)
    }
}
