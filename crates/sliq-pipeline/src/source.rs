//! The Kafka side: which (topic, partition) pairs this instance reads, as dense [`SourceId`]s, and
//! how far each has been read and committed.

use std::collections::HashMap;
use std::time::Instant;

use sliq_core::SourceId;
use sliq_otlp::RecordCounts;

use crate::window_topic::SourcePartition;
use sliq_archive::ArchivedRange;

/// What a resumed partition had already done before this process read it again.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    /// Offsets below are counted and archived: skipped.
    pub archive_from: i64,
    /// Offsets from `archive_from` to here are counted but were only in memory for the archive:
    /// archived again (unless a written file holds them), not counted.
    pub count_from: i64,
    /// How far the replay has come (from `archive_from`): the next checkpoint's archive floor.
    pub replayed_to: i64,
}

/// One assigned partition.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub topic: String,
    pub partition: i32,
    /// The offset after the last record processed: the most a commit may say.
    pub next_offset: Option<i64>,
    /// The last offset committed for it by this instance.
    pub committed: Option<i64>,
    /// The group's committed offset when it arrived: where reading starts, so an owner that has
    /// read nothing yet can tell whether the partition holds anything past it.
    pub starts_at: Option<i64>,
    /// How far it was read when last committed (the commit's metadata).
    pub committed_counted: Option<i64>,
    pub last_record_at: Instant,
    pub idle: bool,
    pub assigned: bool,
    /// Set while a resumed partition is read again up to where its checkpoint had counted.
    pub resume: Option<Resume>,
    /// Offsets below were counted by the previous owner (from its commit's metadata): records
    /// read again there are counted as replayed.
    pub replay_until: Option<i64>,
    /// Archive files written for this partition that a resumed run must not write again.
    pub archived: Vec<ArchivedRange>,
    /// What its records came to since its last partial (`--role reader`).
    pub unpublished: RecordCounts,
}

impl Source {
    /// The partition by name, as the window topic knows it (ids are per process).
    pub(crate) fn name(&self) -> SourcePartition {
        SourcePartition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }

    /// Forgets how far it was read and committed: it left this instance, or just arrived.
    pub(crate) fn forget_position(&mut self) {
        self.next_offset = None;
        self.committed = None;
        self.starts_at = None;
        self.committed_counted = None;
        self.resume = None;
        self.replay_until = None;
        self.archived.clear();
        self.unpublished = RecordCounts::default();
    }

    /// Whether a written archive file already holds the record at `offset` of event hour `hour`.
    pub(crate) fn is_archived(&self, hour: i64, offset: i64) -> bool {
        self.archived
            .iter()
            .any(|a| a.hour == hour && a.first <= offset && offset <= a.last)
    }
}

/// All partitions this instance has read since start.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    /// Topic → partition index → id: looked up by `&str`, so a record costs no allocation.
    ids: HashMap<String, Vec<Option<SourceId>>>,
    list: Vec<Source>,
}

impl Sources {
    /// The id of (topic, partition), registering it on first sight.
    pub(crate) fn id(&mut self, topic: &str, partition: i32, now: Instant) -> SourceId {
        if let Some(id) = self.find(topic, partition) {
            return id;
        }
        let id = SourceId(self.list.len() as u32);
        self.list.push(Source {
            topic: topic.to_owned(),
            partition,
            next_offset: None,
            committed: None,
            starts_at: None,
            committed_counted: None,
            last_record_at: now,
            idle: false,
            assigned: false,
            resume: None,
            replay_until: None,
            archived: Vec::new(),
            unpublished: RecordCounts::default(),
        });
        let slots = self.ids.entry(topic.to_owned()).or_default();
        let index = usize::try_from(partition).unwrap_or(0);
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        slots[index] = Some(id);
        id
    }

    /// The id of a known (topic, partition), without registering.
    pub(crate) fn find(&self, topic: &str, partition: i32) -> Option<SourceId> {
        let slots = self.ids.get(topic)?;
        *slots.get(usize::try_from(partition).ok()?)?
    }

    pub(crate) fn get(&self, id: SourceId) -> &Source {
        &self.list[id.0 as usize]
    }

    pub(crate) fn get_mut(&mut self, id: SourceId) -> &mut Source {
        &mut self.list[id.0 as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SourceId, &Source)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, s)| (SourceId(i as u32), s))
    }

    /// The partitions assigned to this instance now.
    pub(crate) fn assigned(&self) -> Vec<SourceId> {
        self.iter()
            .filter(|(_, s)| s.assigned)
            .map(|(id, _)| id)
            .collect()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (SourceId, &mut Source)> {
        self.list
            .iter_mut()
            .enumerate()
            .map(|(i, s)| (SourceId(i as u32), s))
    }
}
