//! The reader's side of the ledger (`--role reader`): claims the partitions it is assigned in the
//! window topic, learns from the book where counting stopped, and hands what it counted on each
//! partition to the ledger as partials, acknowledged before anything under them is committed
//! (ARCHITECTURE.md, "The ledger").

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::ClientConfig;
use sliq_core::SourceId;
use sliq_otlp::RecordCounts;
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::outage::{Outage, failing, human};
use crate::persist::checkpoint::{StoredBadRequest, StoredPart};
use crate::persist::ledger_snapshot::read_books_snapshot;
use crate::window_topic::{Body, Partial, Publisher, SourcePartition, read_books};

/// How long a regular cycle waits for the window topic's acknowledgements (reading stops
/// meanwhile; a healthy broker answers within milliseconds).
const REGULAR_WAIT: Duration = Duration::from_secs(5);

/// Partials waiting for the window topic, over all partitions, past which reading pauses.
pub(crate) const MAX_WAITING_PARTIALS: usize = 1_000;

/// How long reading the window topic up to a claim may take.
const BOOK_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// One claimed partition.
#[derive(Debug)]
struct Claim {
    source: SourcePartition,
    /// The claim's position in the window topic: every partial carries it.
    epoch: i64,
    /// Where the next partial starts: the end of the last one built.
    built_to: i64,
    /// What the last partial built said, so an unchanged partition sends nothing.
    newest_ts: Option<i64>,
    idle: bool,
    /// Built, not yet acknowledged, in order; retried as they are (a repeat is dropped by the
    /// book), never rebuilt, so a range is never offered twice with different bounds.
    waiting: VecDeque<Partial>,
}

/// What a reader counted on one partition since its last partial.
pub(crate) struct Counted {
    /// The next offset to read: the partial covers up to here.
    pub(crate) to: i64,
    pub(crate) newest_ts: Option<i64>,
    /// The reader saw the high-water mark.
    pub(crate) idle: bool,
    pub(crate) records: RecordCounts,
    pub(crate) parts: Vec<StoredPart>,
    /// The dead-letter topic's ends as this reader last saw them acknowledged.
    pub(crate) dead_letter_ends: Vec<(i32, i64)>,
}

/// What a new owner learned about a partition from the book.
#[derive(Debug, Clone)]
pub(crate) struct Learned {
    /// The next offset nobody counted: counting resumes here.
    pub(crate) counted_to: Option<i64>,
    /// Where the dead letters of records after that cut begin (empty: unknown).
    pub(crate) dead_letter_ends: Vec<(i32, i64)>,
}

/// The window-topic publisher and this reader's claims.
pub(crate) struct Partials {
    publisher: Publisher,
    client: ClientConfig,
    group: String,
    instance: String,
    rt: Handle,
    claims: HashMap<SourceId, Claim>,
    /// Bad requests a dependency judged, waiting to ride with the next partials built.
    bad_requests: Vec<StoredBadRequest>,
    outage: Outage,
}

impl Partials {
    pub(crate) fn new(
        client: &ClientConfig,
        group: &str,
        instance: &str,
        rt: Handle,
    ) -> Result<Partials, PipelineError> {
        Ok(Partials {
            publisher: Publisher::new(client, group)?,
            client: client.clone(),
            group: group.to_owned(),
            instance: instance.to_owned(),
            rt,
            claims: HashMap::new(),
            bad_requests: Vec::new(),
            outage: Outage::default(),
        })
    }

    /// Claims `sources` (just assigned) and reads the window topic up to the claims: per source,
    /// where counting stopped. Retries until `deadline` while the topic does not answer.
    pub(crate) fn claim(
        &mut self,
        sources: &[(SourceId, SourcePartition)],
        deadline: Instant,
    ) -> Result<HashMap<SourceId, Learned>, PipelineError> {
        if sources.is_empty() {
            return Ok(HashMap::new());
        }
        let mut epochs = Vec::with_capacity(sources.len());
        for (_, source) in sources {
            let body = Body::Claim {
                source: source.clone(),
                instance: self.instance.clone(),
            };
            let epoch = loop {
                match self.rt.block_on(self.publisher.publish(&body)) {
                    Ok(offset) => break offset,
                    Err(e) if Instant::now() < deadline => {
                        warn!(
                            "claiming {}/{} in the window topic: {e}; retrying",
                            source.topic, source.partition
                        );
                        self.rt
                            .block_on(tokio::time::sleep(Duration::from_millis(500)));
                    }
                    Err(e) => return Err(e),
                }
            };
            epochs.push(epoch);
        }
        let until = epochs.iter().copied().max().unwrap_or(0);
        let wanted: Vec<SourcePartition> = sources.iter().map(|(_, s)| s.clone()).collect();
        // The ledger's newest books save reading the window topic from its beginning. Books
        // newer than our claims are as good: after a claim, only its owner's partials count.
        let known =
            read_books_snapshot(&self.client, &self.group, BOOK_READ_TIMEOUT)?.unwrap_or_default();
        let reading = read_books(
            &self.client,
            &self.group,
            &wanted,
            &known.books,
            (known.covers, until),
            BOOK_READ_TIMEOUT,
        )?;
        for (source, verdict) in &reading.refused {
            warn!(
                "the window topic holds a partial of {}/{} the book refused ({verdict:?}); the \
                 ledger refuses it too",
                source.topic, source.partition
            );
        }
        let mut learned = HashMap::new();
        for ((id, source), epoch) in sources.iter().zip(epochs) {
            let known = reading.books.get(source);
            let counted_to = known.and_then(|b| b.book.counted_to());
            let dead_letter_ends = known
                .map(|b| b.dead_letter_ends.clone())
                .unwrap_or_default();
            learned.insert(
                *id,
                Learned {
                    counted_to,
                    dead_letter_ends,
                },
            );
            self.claims.insert(
                *id,
                Claim {
                    source: source.clone(),
                    epoch,
                    built_to: counted_to.unwrap_or(0),
                    newest_ts: None,
                    idle: false,
                    waiting: VecDeque::new(),
                },
            );
        }
        info!(
            partitions = sources.len(),
            "partitions claimed in the window topic; counting resumes where the book says"
        );
        Ok(learned)
    }

    /// Where a claimed partition's first partial starts (set once the reader knows where it
    /// counts from).
    pub(crate) fn start_at(&mut self, id: SourceId, from: i64) {
        if let Some(claim) = self.claims.get_mut(&id) {
            claim.built_to = from;
        }
    }

    /// A partition left: its claim is forgotten (a newer claim by its next owner fences
    /// anything still in flight).
    pub(crate) fn release(&mut self, id: SourceId) {
        if let Some(claim) = self.claims.remove(&id)
            && !claim.waiting.is_empty()
        {
            warn!(
                "{}/{} left with {} partials the window topic did not acknowledge: their \
                 records were not committed and are counted by the next owner",
                claim.source.topic,
                claim.source.partition,
                claim.waiting.len()
            );
        }
    }

    /// Whether `id` is claimed: only claimed partitions are counted.
    pub(crate) fn is_claimed(&self, id: SourceId) -> bool {
        self.claims.contains_key(&id)
    }

    /// Bad requests the evaluator judged since the last call: they ride with the next partials.
    pub(crate) fn add_bad_requests(
        &mut self,
        requests: impl IntoIterator<Item = StoredBadRequest>,
    ) {
        self.bad_requests.extend(requests);
    }

    /// Builds the partial of `id` covering `[built_to, counted.to)` unless nothing changed since
    /// the last one; its parts are taken out of the windows by the caller.
    pub(crate) fn build(&mut self, id: SourceId, counted: Counted) -> bool {
        let Some(claim) = self.claims.get_mut(&id) else {
            return false;
        };
        let to = counted.to.max(claim.built_to);
        if to == claim.built_to
            && counted.parts.is_empty()
            && counted.newest_ts == claim.newest_ts
            && counted.idle == claim.idle
            && counted.records == RecordCounts::default()
        {
            return false;
        }
        let mut partial = Partial::empty(
            claim.source.clone(),
            &self.instance,
            claim.epoch,
            (claim.built_to, to),
            counted.newest_ts,
        );
        partial.idle = counted.idle;
        partial.records = counted.records.into();
        partial.parts = counted.parts;
        partial.bad_requests = self.bad_requests.clone();
        partial.dead_letter_ends = counted.dead_letter_ends;
        claim.built_to = to;
        claim.newest_ts = counted.newest_ts;
        claim.idle = counted.idle;
        claim.waiting.push_back(partial);
        true
    }

    /// After a cycle's partials are built: the bad requests went with them.
    pub(crate) fn bad_requests_sent(&mut self) {
        self.bad_requests.clear();
    }

    /// Sends every waiting partial, each partition's in order, until all are acknowledged or
    /// `deadline` (a regular cycle waits at most a few seconds). Returns whether none is left.
    pub(crate) fn flush(&mut self, deadline: Option<Instant>) -> bool {
        let deadline = deadline.unwrap_or_else(|| Instant::now() + REGULAR_WAIT);
        loop {
            let fronts: Vec<(SourceId, Body)> = self
                .claims
                .iter()
                .filter_map(|(id, c)| {
                    let front = c.waiting.front()?;
                    Some((*id, Body::Partial(front.clone())))
                })
                .collect();
            if fronts.is_empty() {
                if let Some(lasted) = self.outage.recovered(Instant::now()) {
                    info!(
                        "the window topic acknowledges again after {}",
                        human(lasted)
                    );
                }
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let publisher = &self.publisher;
            let sends = fronts.iter().map(|(_, body)| publisher.publish(body));
            let results = self
                .rt
                .block_on(async { tokio::time::timeout(left, join_all(sends)).await });
            let Ok(results) = results else {
                self.report_failure(format!("no acknowledgement within {}", human(left)));
                return false;
            };
            let mut failed = None;
            for ((id, _), result) in fronts.iter().zip(results) {
                match result {
                    Ok(_) => {
                        if let Some(claim) = self.claims.get_mut(id) {
                            claim.waiting.pop_front();
                        }
                    }
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            if let Some(reason) = failed {
                self.report_failure(reason);
                return false;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    fn report_failure(&mut self, reason: String) {
        let waiting = self.waiting();
        if let Some(lasted) = self.outage.failed(Instant::now()) {
            warn!(
                "publishing to the window topic {}: {reason}; {waiting} partials wait and are \
                 sent again as they are; nothing under them is committed",
                failing(lasted)
            );
        }
    }

    /// The lowest offset of `id` in a partial not yet acknowledged: commits stay below it.
    pub(crate) fn hold_floor(&self, id: SourceId) -> Option<i64> {
        self.claims
            .get(&id)
            .and_then(|c| c.waiting.front())
            .map(|p| p.from)
    }

    /// Partials waiting for the window topic, over every partition.
    pub(crate) fn waiting(&self) -> usize {
        self.claims.values().map(|c| c.waiting.len()).sum()
    }
}
