//! The baseline of `scripts/bench-e2e.sh`: read a topic to its end with the same consumer settings
//! as sliq and do nothing else, so sliq's end-to-end rate can be stated as a ratio of this one.
//!
//! Usage: raw_consume BROKERS TOPIC RECORDS

// A benchmark tool reports on the terminal.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, records] = args.as_slice() else {
        return Err("usage: raw_consume BROKERS TOPIC RECORDS".into());
    };
    let expected: u64 = records.parse()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-consume-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.queue.backoff.ms", "100")
        .create()?;
    consumer.subscribe(&[topic.as_str()])?;
    let (mut seen, mut bytes) = (0u64, 0usize);
    let mut started = None;
    while seen < expected {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            started.get_or_insert_with(Instant::now);
            bytes += rdkafka::Message::payload(&message).map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    println!(
        "raw_consume: {seen} records, {bytes} bytes in {:.3}s = {:.0} records/s",
        elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
