//! `sliq gen`'s Kafka side: generated records produced to a topic at a target rate or count.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use sliq_config::KafkaConnection;
use sliq_gen::{Generator, RecordKind};

use crate::error::PipelineError;
use crate::kafka_client::{AccessWatch, WatchedContext, client_config};

/// What was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceReport {
    pub valid: u64,
    pub malformed: u64,
    pub elapsed: Duration,
}

/// Records awaited together; bounds memory while keeping many in flight.
const IN_FLIGHT: usize = 10_000;

/// Produces `count` records from `generator` to `topic` of the brokers of `connection` (a
/// spec's `source.kafka`, or just `"host:port"`), at most `rate` records per second when given,
/// and returns once every record is acknowledged.
pub async fn produce_generated<'a>(
    connection: impl Into<KafkaConnection<'a>>,
    topic: &str,
    generator: &mut Generator,
    count: u64,
    rate: Option<f64>,
) -> Result<ProduceReport, PipelineError> {
    let connection = connection.into();
    let watch = AccessWatch::new(connection);
    crate::kafka_client::probe_before_start(connection, &watch)?;
    let mut config = client_config(connection, "sliq-gen");
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    let producer: FutureProducer<WatchedContext> =
        crate::kafka_client::create(&config, WatchedContext::new(&watch))?;
    let started = Instant::now();
    let (mut valid, mut malformed) = (0, 0);
    let mut in_flight: Vec<DeliveryFuture> = Vec::with_capacity(IN_FLIGHT);
    for i in 0..count {
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let record = generator.next_record();
        match record.kind {
            RecordKind::Valid => valid += 1,
            RecordKind::Malformed(_) => malformed += 1,
        }
        let mut to_send = FutureRecord::to(topic)
            .key(record.key.as_str())
            .payload(record.payload.as_slice());
        loop {
            match producer.send_result(to_send) {
                Ok(delivery) => break in_flight.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    to_send = back;
                    settle(&mut in_flight, topic).await?;
                    watch.check()?;
                }
                Err((e, _)) => {
                    return Err(PipelineError::kafka(format!("producing to {topic}"))(e));
                }
            }
        }
        if in_flight.len() >= IN_FLIGHT {
            settle(&mut in_flight, topic).await?;
            watch.check()?;
        }
    }
    settle(&mut in_flight, topic).await?;
    producer
        .flush(Duration::from_secs(30))
        .map_err(PipelineError::kafka(format!("flushing to {topic}")))?;
    Ok(ProduceReport {
        valid,
        malformed,
        elapsed: started.elapsed(),
    })
}

async fn settle(in_flight: &mut Vec<DeliveryFuture>, topic: &str) -> Result<(), PipelineError> {
    let results = try_join_all(in_flight.drain(..))
        .await
        .map_err(|_| PipelineError::kafka(format!("producing to {topic}"))(KafkaError::Canceled))?;
    for r in results {
        if let Err((e, _)) = r {
            return Err(PipelineError::kafka(format!("producing to {topic}"))(e));
        }
    }
    Ok(())
}
