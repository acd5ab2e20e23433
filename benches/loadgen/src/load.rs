//! A load running in the background while a test disrupts the server, and
//! what it proves afterwards.
//!
//! A test that restarts a server under load and then finds no failed
//! request has shown something only if the load was still running at each
//! restart and for a while after it. So the load here has no fixed end: it
//! runs until the test [`finish`](Load::finish)es it, a settle time after the
//! last disruption, and the report checks that every [`mark`](Load::mark)ed
//! disruption fell inside the load with that settle time after it. The
//! plan's `duration` is only a ceiling, for a test that hangs.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Plan, Sample, Stats, micros, summarize};

/// A disruption the test made, and when, from the start of the load.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub what: String,
    pub at_us: u64,
}

/// A load running on its own runtime; see the module docs.
pub struct Load {
    plan: Plan,
    runtime: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<Vec<Sample>>,
    stop: Arc<AtomicBool>,
    origin: Instant,
    marks: Vec<Mark>,
}

impl Load {
    /// Starts `plan`'s clients now.
    pub fn start(plan: &Plan) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the load");
        let stop = Arc::new(AtomicBool::new(false));
        let origin = Instant::now();
        let task = {
            let plan = plan.clone();
            let stop = stop.clone();
            runtime.spawn(async move { crate::run_until(&plan, origin, stop).await })
        };
        Self {
            plan: plan.clone(),
            runtime,
            task,
            stop,
            origin,
            marks: Vec::new(),
        }
    }

    /// How long the load has been running.
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Records a disruption (call it when the disruption starts); returns
    /// its time from the start of the load.
    pub fn mark(&mut self, what: impl Into<String>) -> Duration {
        let at = self.origin.elapsed();
        self.marks.push(Mark {
            what: what.into(),
            at_us: micros(at),
        });
        at
    }

    /// Lets the load run `settle` longer, stops it, and reports. Clients
    /// finish the request they are in.
    pub fn finish(self, settle: Duration) -> Report {
        std::thread::sleep(settle);
        let stopped = self.origin.elapsed().min(self.plan.duration);
        self.stop.store(true, Ordering::Release);
        let samples = self
            .runtime
            .block_on(self.task)
            .expect("the load's task panicked");
        let stats = summarize(&self.plan, &samples);
        Report {
            plan: self.plan,
            samples,
            stats,
            marks: self.marks,
            settle,
            ended_us: micros(stopped),
        }
    }
}

/// What a finished [`Load`] recorded.
pub struct Report {
    pub plan: Plan,
    pub samples: Vec<Sample>,
    /// Per group, then `all` last.
    pub stats: Vec<Stats>,
    pub marks: Vec<Mark>,
    /// The load kept running this long after the last mark.
    pub settle: Duration,
    /// When the load stopped: finished by the test, or cut by the plan's
    /// duration if that came first.
    pub ended_us: u64,
}

impl Report {
    /// The figures of all requests together.
    pub fn all(&self) -> &Stats {
        self.stats.last().expect("summarize adds `all`")
    }

    /// The figures of one group, by name.
    pub fn group(&self, name: &str) -> &Stats {
        self.stats
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no group {name:?}"))
    }

    /// Disruptions that did not happen while the load ran with `settle` of
    /// load after them, described.
    pub fn outside(&self) -> Vec<String> {
        let first = self.samples.first().map_or(u64::MAX, |s| s.start_us);
        let settle = micros(self.settle);
        self.marks
            .iter()
            .filter(|m| m.at_us < first || m.at_us + settle > self.ended_us)
            .map(|m| {
                format!(
                    "{} at {:.2} s is outside the load (it ran from {:.2} s to {:.2} s; \
                     {:.1} s of load must follow each disruption)",
                    m.what,
                    secs(m.at_us),
                    secs(first.min(self.ended_us)),
                    secs(self.ended_us),
                    self.settle.as_secs_f64()
                )
            })
            .collect()
    }

    /// The first `n` failed requests, described.
    pub fn failures(&self, n: usize) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| !s.outcome.is_ok())
            .take(n)
            .map(|s| {
                format!(
                    "{} at {:.3}s after {:.1} ms: {}",
                    self.stats[s.group].name,
                    secs(s.start_us),
                    s.latency_us as f64 / 1e3,
                    s.outcome.kind()
                )
            })
            .collect()
    }

    /// What makes this run prove nothing or prove a failure: disruptions
    /// outside the load, fewer than `min_requests` requests, failed
    /// requests, retried ones.
    pub fn problems(&self, min_requests: usize) -> Vec<String> {
        let mut problems = self.outside();
        let all = self.all();
        if all.requests < min_requests {
            problems.push(format!(
                "only {} requests, fewer than the {min_requests} this test needs to mean anything",
                all.requests
            ));
        }
        if all.failed > 0 {
            problems.push(format!(
                "{} requests failed: {:#?}",
                all.failed,
                self.failures(20)
            ));
        }
        if all.retried > 0 {
            problems.push(format!(
                "{} requests were retried after the server closed a kept connection \
                 before answering",
                all.retried
            ));
        }
        problems
    }

    /// Panics unless [`problems`](Self::problems) is empty.
    pub fn assert_clean(&self, min_requests: usize) {
        let problems = self.problems(min_requests);
        assert!(problems.is_empty(), "{}\n{self}", problems.join("\n"));
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stats {
            writeln!(f, "   {s}")?;
        }
        write!(
            f,
            "   {} disruptions from {:.2} s to {:.2} s; load ended at {:.2} s",
            self.marks.len(),
            self.marks.first().map_or(0.0, |m| secs(m.at_us)),
            self.marks.last().map_or(0.0, |m| secs(m.at_us)),
            secs(self.ended_us)
        )
    }
}
