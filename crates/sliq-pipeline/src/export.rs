//! The export stage: OTLP requests wait in a bounded backlog and go out one at a time, off the
//! pipeline thread, retried with backoff for as long as the collector is away. Reading goes on
//! while the backlog has room; when it is full the pipeline pauses its partitions (backpressure).
//!
//! A request leaves the backlog only once acknowledged; the offsets its windows hold
//! ([`ExportQueue::hold_floor`]) are not committed before that. The backlog is part of every
//! checkpoint, so a crash re-sends what was not acknowledged (a cumulative point sent twice carries
//! the same value and time).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use sliq_core::SourceId;
use sliq_otlp::{ExportError, ExportMetricsServiceRequest, Exporter};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::outage::{Outage, human};

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// One request waiting for its acknowledgement, with the offsets its windows hold.
#[derive(Debug, Clone)]
pub(crate) struct PendingExport {
    pub(crate) request: Arc<ExportMetricsServiceRequest>,
    pub(crate) holds: Vec<(SourceId, i64)>,
    bytes: usize,
}

type Sending = JoinHandle<(Exporter, Result<(), ExportError>)>;

#[derive(Debug)]
pub(crate) struct ExportQueue {
    /// `None` while a request is in flight: the exporter travels with it.
    exporter: Option<Exporter>,
    endpoint: String,
    rt: Handle,
    backlog: VecDeque<PendingExport>,
    bytes: usize,
    max_bytes: usize,
    sending: Option<Sending>,
    retry_at: Instant,
    delay: Duration,
    outage: Outage,
    acknowledged: u64,
}

impl ExportQueue {
    pub(crate) fn new(exporter: Exporter, endpoint: &str, max_bytes: u64, rt: Handle) -> Self {
        ExportQueue {
            exporter: Some(exporter),
            endpoint: endpoint.to_owned(),
            rt,
            backlog: VecDeque::new(),
            bytes: 0,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            sending: None,
            retry_at: Instant::now(),
            delay: FIRST_RETRY_DELAY,
            outage: Outage::default(),
            acknowledged: 0,
        }
    }

    /// Queues a request whose windows hold these offsets.
    pub(crate) fn push(
        &mut self,
        request: ExportMetricsServiceRequest,
        holds: Vec<(SourceId, i64)>,
    ) {
        let bytes = request.encoded_len();
        self.bytes += bytes;
        self.backlog.push_back(PendingExport {
            request: Arc::new(request),
            holds,
            bytes,
        });
    }

    /// Moves the queue on without waiting: collects a finished send, starts the next one when due.
    pub(crate) fn pump(&mut self) {
        let now = Instant::now();
        if let Some(sending) = self.sending.take_if(|s| s.is_finished()) {
            // Finished: joining does not wait.
            match self.rt.block_on(sending) {
                Ok((exporter, result)) => {
                    self.exporter = Some(exporter);
                    self.settle(result, now);
                }
                Err(e) => {
                    // The task panicked and took the exporter with it: nothing can export now.
                    warn!("the OTLP export task failed: {e}; exports stop until restart");
                }
            }
        }
        if self.sending.is_some() || now < self.retry_at || self.backlog.is_empty() {
            return;
        }
        let (Some(front), Some(mut exporter)) = (self.backlog.front(), self.exporter.take()) else {
            return;
        };
        let request = Arc::clone(&front.request);
        self.sending = Some(self.rt.spawn(async move {
            let result = exporter.export(&request).await;
            (exporter, result)
        }));
    }

    fn settle(&mut self, result: Result<(), ExportError>, now: Instant) {
        match result {
            Ok(()) => {
                if let Some(done) = self.backlog.pop_front() {
                    self.bytes -= done.bytes;
                }
                self.acknowledged += 1;
                self.delay = FIRST_RETRY_DELAY;
                self.retry_at = now;
                if let Some(lasted) = self.outage.recovered(now) {
                    info!(
                        "OTLP export to {} works again after {}; {} requests still to send",
                        self.endpoint,
                        human(lasted),
                        self.backlog.len()
                    );
                }
            }
            Err(e) => {
                self.retry_at = now + self.delay;
                self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
                if let Some(lasted) = self.outage.failed(now) {
                    let failing = if lasted.is_zero() {
                        "failed".to_owned()
                    } else {
                        format!("failing for {}", human(lasted))
                    };
                    warn!(
                        "OTLP export to {} {failing}: {e}; {} requests ({} KiB of {} KiB) wait, \
                         reading goes on until the backlog is full",
                        self.endpoint,
                        self.backlog.len(),
                        self.bytes >> 10,
                        self.max_bytes >> 10
                    );
                }
            }
        }
    }

    /// Sends until the backlog is empty or `deadline` passes; whether it emptied.
    pub(crate) fn flush_until(&mut self, deadline: Instant) -> bool {
        loop {
            self.pump();
            if self.backlog.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.rt
                .block_on(tokio::time::sleep(Duration::from_millis(10)));
        }
    }

    /// Reading must pause: the backlog holds `max_backlog_bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= self.max_bytes
    }

    /// Reading may resume: the backlog is back under half its bound.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < self.max_bytes / 2
    }

    /// The lowest offset of `source` held by a request not yet acknowledged.
    pub(crate) fn hold_floor(&self, source: SourceId) -> Option<i64> {
        self.backlog
            .iter()
            .flat_map(|p| &p.holds)
            .filter(|(s, _)| *s == source)
            .map(|(_, offset)| *offset)
            .min()
    }

    pub(crate) fn pending(&self) -> impl Iterator<Item = &PendingExport> {
        self.backlog.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.backlog.len()
    }

    /// Requests acknowledged by the collector so far.
    pub(crate) fn acknowledged(&self) -> u64 {
        self.acknowledged
    }
}
