//! The window topic on a real broker: sliq creates it, claims and partials land in one order, and
//! reading that order through the book gives each partition's count cut exactly as the ledger
//! will see it, zombies fenced by the claim that follows them.

use std::time::Duration;

use rdkafka::ClientConfig;
use sliq_pipeline::window_topic::{
    Body, Partial, Publisher, SourcePartition, ensure_topics, read_books,
};
use sliq_tests::broker::Broker;

const GROUP: &str = "ledger-test";

fn client(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_fence_zombies_and_every_reader_of_the_order_learns_the_same_cut() {
    let broker = Broker::start().expect("broker");
    let config = client(&broker);
    let week = Duration::from_secs(7 * 24 * 3600);
    ensure_topics(&config, GROUP, week).await.expect("topics");
    // Twice: a second instance starting finds them there.
    ensure_topics(&config, GROUP, week)
        .await
        .expect("topics again");

    let publisher = Publisher::new(&config, GROUP).expect("publisher");
    let p0 = SourcePartition {
        topic: "logs".into(),
        partition: 0,
    };
    let p1 = SourcePartition {
        topic: "logs".into(),
        partition: 1,
    };
    let claim = |source: &SourcePartition, instance: &str| Body::Claim {
        source: source.clone(),
        instance: instance.into(),
    };
    let partial = |source: &SourcePartition, instance: &str, epoch, range, ts| {
        Body::Partial(Partial::empty(
            source.clone(),
            instance,
            epoch,
            range,
            Some(ts),
        ))
    };

    // Reader a owns both partitions.
    let a0 = publisher.publish(&claim(&p0, "a")).await.expect("claim");
    let a1 = publisher.publish(&claim(&p1, "a")).await.expect("claim");
    for body in [
        partial(&p0, "a", a0, (0, 100), 1_000),
        partial(&p1, "a", a1, (0, 40), 1_500),
        partial(&p0, "a", a0, (100, 150), 2_000),
        // A retry of the same partial: a repeat, counted once.
        partial(&p0, "a", a0, (100, 150), 2_000),
    ] {
        publisher.publish(&body).await.expect("partial");
    }
    // a stalls; b takes p0 over. Before b's claim lands, a publishes once more (a zombie that
    // has not noticed yet): that range is part of the cut b must learn.
    publisher
        .publish(&partial(&p0, "a", a0, (150, 180), 2_500))
        .await
        .expect("zombie before the claim");
    let b0 = publisher.publish(&claim(&p0, "b")).await.expect("claim");
    // After the claim, a's partials no longer count.
    let stale = publisher
        .publish(&partial(&p0, "a", a0, (180, 230), 3_000))
        .await
        .expect("zombie after the claim");

    // What b learns, reading up to its claim: counted up to 180, newest event 2,500.
    let learned = read_books(
        &config,
        GROUP,
        std::slice::from_ref(&p0),
        &[],
        (0, b0),
        Duration::from_secs(20),
    )
    .expect("read up to the claim");
    let book = learned.books[&p0].book;
    assert_eq!(book.counted_to(), Some(180));
    assert_eq!(book.newest_ts(), Some(2_500));
    assert!(learned.refused.is_empty(), "{:?}", learned.refused);

    // b counts from there.
    publisher
        .publish(&partial(&p0, "b", b0, (180, 260), 3_500))
        .await
        .expect("b's partial");
    let end = publisher
        .publish(&partial(&p1, "a", a1, (40, 90), 4_000))
        .await
        .expect("a's partial on p1")
        + 1;

    // The ledger's view of the whole order: both partitions exact, the zombie's late partial
    // refused by name.
    let ledger = read_books(
        &config,
        GROUP,
        &[p0.clone(), p1.clone()],
        &[],
        (0, end),
        Duration::from_secs(20),
    )
    .expect("read everything");
    assert_eq!(ledger.books[&p0].book.counted_to(), Some(260));
    assert_eq!(ledger.books[&p0].book.epoch(), Some(b0));
    assert_eq!(ledger.books[&p1].book.counted_to(), Some(90));
    assert_eq!(ledger.books[&p1].book.newest_ts(), Some(4_000));
    assert_eq!(
        ledger.refused,
        vec![(p0.clone(), sliq_core::ledger::Verdict::StaleEpoch)],
        "only the partial at offset {stale} is refused"
    );
    assert_eq!(ledger.unreadable, 0);
}
