//! Refused records go to the dead-letter topic with their original bytes, key and headers, plus
//! headers saying why and where from. Deliveries are awaited before any commit that covers them.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use sliq_core::Reject;
use tokio::runtime::Handle;

use crate::error::PipelineError;

/// Header names on every dead letter (also documented in the README).
pub const REASON: &str = "sliq.reason";
pub const ERROR: &str = "sliq.error";
pub const SOURCE_TOPIC: &str = "sliq.source.topic";
pub const SOURCE_PARTITION: &str = "sliq.source.partition";
pub const SOURCE_OFFSET: &str = "sliq.source.offset";

pub(crate) struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    in_flight: Vec<DeliveryFuture>,
    rt: Handle,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub(crate) fn new(producer: FutureProducer, topic: String, rt: Handle) -> Self {
        DeadLetters {
            producer,
            topic,
            in_flight: Vec::new(),
            rt,
        }
    }

    /// Queues one refused record; the delivery is confirmed by [`DeadLetters::settle`].
    pub(crate) fn send(
        &mut self,
        msg: &BorrowedMessage<'_>,
        reject: &Reject,
    ) -> Result<(), PipelineError> {
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let error = reject.to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = msg.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let headers = headers
            .insert(Header {
                key: REASON,
                value: Some(reject.code()),
            })
            .insert(Header {
                key: ERROR,
                value: Some(error.as_str()),
            })
            .insert(Header {
                key: SOURCE_TOPIC,
                value: Some(msg.topic()),
            })
            .insert(Header {
                key: SOURCE_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: SOURCE_OFFSET,
                value: Some(offset.as_str()),
            });
        // Owned, so the record does not borrow `self` while `settle` needs it mutably.
        let topic = self.topic.clone();
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic)
            .payload(msg.payload().unwrap_or_default())
            .headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer's queue is full: wait for what is in flight, then retry.
                    record = back;
                    self.settle()?;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(self.failed(e.to_string())),
            }
        }
    }

    /// Waits until every queued dead letter is acknowledged by the broker.
    pub(crate) fn settle(&mut self) -> Result<(), PipelineError> {
        if self.in_flight.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.in_flight);
        let results = self.rt.block_on(join_all(pending));
        for r in results {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.failed(e.to_string())),
                Err(_) => return Err(self.failed("the producer dropped the delivery".into())),
            }
        }
        Ok(())
    }

    fn failed(&self, detail: String) -> PipelineError {
        PipelineError::DeadLetter {
            topic: self.topic.clone(),
            detail,
        }
    }
}
