//! The ledger's book of what has been counted, per source partition.
//!
//! Readers publish what they counted on each source partition as *partials* covering an offset
//! range, into a window topic of one partition: every partial and every *claim* (a reader taking
//! a source partition over) has one place in one order. The ledger, and a reader that takes a
//! partition over, read that order through the same [`PartitionBook`], so both arrive at the same
//! count cut without talking to each other: each offset range is counted once, and a reader that
//! lost a partition without noticing (a zombie) cannot count it again after the next claim.

/// One source partition's entry in the book (serializable: the ledger's snapshots keep it, and a
/// reader taking a partition over starts from the newest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionBook {
    /// The position (window-topic offset) of the newest claim: partials must carry it.
    epoch: Option<i64>,
    /// The next source offset not yet counted; `None` before the first applied range.
    counted_to: Option<i64>,
    /// The newest event time of any applied range.
    newest_ts: Option<i64>,
}

/// What the book says about one offered range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Count it: it continues the book (or is the partition's first range).
    Apply,
    /// Count it, though it starts after the book's end: `missing` offsets were never counted by
    /// anyone (a reader that started past the count cut). Reported, never silent.
    ApplyAfterGap { missing: i64 },
    /// Already counted entirely (a partial published twice): drop it.
    Repeat,
    /// Published under an older claim than the book's: a reader that lost the partition.
    StaleEpoch,
    /// Published under a claim the book has not seen (out of order, or a corrupt message).
    UnknownEpoch,
    /// Starts inside the counted part but ends after it: cannot be split, so it is not counted.
    Overlap { counted_to: i64 },
}

impl Verdict {
    /// Whether the range's counts go into the windows.
    pub fn applies(self) -> bool {
        matches!(self, Verdict::Apply | Verdict::ApplyAfterGap { .. })
    }
}

impl PartitionBook {
    /// A claim read at window-topic position `at`: from now on only partials carrying `at` count.
    /// Claims are read in topic order, so a claim never goes back; one that would is ignored.
    pub fn claim(&mut self, at: i64) {
        if self.epoch.is_none_or(|e| at > e) {
            self.epoch = Some(at);
        }
    }

    /// Offers the range `[from, to)` of source offsets, counted under claim `epoch`, whose newest
    /// event time was `newest_ts`; the book moves when the verdict applies.
    pub fn offer(&mut self, epoch: i64, from: i64, to: i64, newest_ts: Option<i64>) -> Verdict {
        let verdict = match self.epoch {
            Some(current) if epoch < current => return Verdict::StaleEpoch,
            Some(current) if epoch > current => return Verdict::UnknownEpoch,
            None => return Verdict::UnknownEpoch,
            Some(_) => match self.counted_to {
                None => Verdict::Apply,
                // First, so that an empty range at the end (a reader's heartbeat: no records,
                // only its event time) applies.
                Some(counted) if from == counted => Verdict::Apply,
                Some(counted) if to <= counted => return Verdict::Repeat,
                Some(counted) if from > counted => Verdict::ApplyAfterGap {
                    missing: from - counted,
                },
                Some(counted) => {
                    return Verdict::Overlap {
                        counted_to: counted,
                    };
                }
            },
        };
        self.counted_to = Some(to);
        if let Some(ts) = newest_ts {
            self.newest_ts = Some(self.newest_ts.map_or(ts, |n| n.max(ts)));
        }
        verdict
    }

    /// The next source offset not yet counted (`None`: nothing counted yet).
    pub fn counted_to(&self) -> Option<i64> {
        self.counted_to
    }

    /// The newest event time counted on this partition.
    pub fn newest_ts(&self) -> Option<i64> {
        self.newest_ts
    }

    /// The claim partials must carry now.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_count_once_in_order() {
        let mut book = PartitionBook::default();
        // Before any claim nothing counts.
        assert_eq!(book.offer(0, 0, 10, Some(5)), Verdict::UnknownEpoch);
        book.claim(3);
        // The partition's first range may start anywhere (the group's committed offset).
        assert_eq!(book.offer(3, 100, 150, Some(1_000)), Verdict::Apply);
        // A heartbeat: no records, an event time (older: it does not move it back).
        assert_eq!(book.offer(3, 150, 150, Some(900)), Verdict::Apply);
        assert_eq!(book.offer(3, 150, 200, Some(2_000)), Verdict::Apply);
        // The same partial again, or any range inside what was counted: dropped.
        assert_eq!(book.offer(3, 150, 200, Some(2_000)), Verdict::Repeat);
        assert_eq!(book.offer(3, 100, 120, None), Verdict::Repeat);
        // Straddling the end: cannot be split.
        assert_eq!(
            book.offer(3, 180, 260, Some(3_000)),
            Verdict::Overlap { counted_to: 200 }
        );
        // A range that skips offsets counts, and says how many were skipped.
        assert_eq!(
            book.offer(3, 210, 220, Some(1_500)),
            Verdict::ApplyAfterGap { missing: 10 }
        );
        assert_eq!(book.counted_to(), Some(220));
        // Event time only moves forward.
        assert_eq!(book.newest_ts(), Some(2_000));
    }

    /// The takeover in one order: a zombie's partial before the new claim is part of the cut the
    /// new owner learns; after it, it is refused.
    #[test]
    fn a_claim_fences_the_previous_owner_and_fixes_the_cut() {
        let mut book = PartitionBook::default();
        book.claim(1);
        assert_eq!(book.offer(1, 0, 100, Some(10)), Verdict::Apply);
        // The old owner publishes once more before the new owner's claim lands (position 7):
        assert_eq!(book.offer(1, 100, 130, Some(20)), Verdict::Apply);
        book.claim(7);
        // ...and once after: refused, whatever its range.
        assert_eq!(book.offer(1, 130, 160, Some(30)), Verdict::StaleEpoch);
        // The new owner read the same order up to its claim, so it starts at 130.
        let learned = book.counted_to();
        assert_eq!(learned, Some(130));
        assert_eq!(book.offer(7, 130, 170, Some(25)), Verdict::Apply);
        // A claim read out of order never moves the epoch back.
        book.claim(5);
        assert_eq!(book.epoch(), Some(7));
        assert_eq!(book.offer(7, 170, 171, None), Verdict::Apply);
        assert!(!Verdict::StaleEpoch.applies() && Verdict::Apply.applies());
    }
}
