//! `archive.redact` on the reader thread: the archive is handed a redacted copy of each record,
//! decoded again so that its typed columns and its raw bytes keep the same things. The record
//! that was judged is the one that arrived; only what is kept changes.

use sliq_config::PipelineSpec;
use sliq_core::{Decoder, Event};
use sliq_redact::Redactor;

use crate::error::PipelineError;

/// The compiled rules and what redacting one record reuses.
pub(crate) struct Redaction {
    redactor: Redactor,
    /// Decodes the redacted copy. Without a size limit: a hash can make a record longer than the
    /// `max_record_bytes` it was accepted under.
    decoder: Decoder,
    /// The redacted copy of the record being archived.
    copy: Vec<u8>,
}

impl Redaction {
    /// `None` when the spec has no `archive.redact` (then records go to the archive untouched,
    /// at no cost).
    pub(crate) fn new(spec: &PipelineSpec) -> Result<Option<Self>, PipelineError> {
        let redactor = spec
            .redactor()
            .map_err(|e| PipelineError::Redact(e.to_string()))?;
        Ok(redactor.map(|redactor| Redaction {
            redactor,
            decoder: spec.decoder(usize::MAX),
            copy: Vec::new(),
        }))
    }

    /// Calls `keep` with the archive row and the raw bytes the archive keeps of `record`, whose
    /// judged event is `judged`.
    pub(crate) fn kept<R>(
        &mut self,
        record: &[u8],
        judged: &Event<'_>,
        keep: impl FnOnce(&Event<'_>, Option<&[u8]>) -> R,
    ) -> Result<R, String> {
        self.redactor
            .redact_record(record, &mut self.copy)
            .map_err(|e| e.to_string())?;
        let parsed = self.decoder.parse(&self.copy).map_err(|e| e.to_string())?;
        let mut row = self.decoder.decode(&parsed).map_err(|e| e.to_string())?;
        // No rule may rewrite the status, but dropping an error object would make the copy's
        // derived status `ok`: the row keeps the status the record was judged with.
        row.status = judged.status;
        Ok(keep(&row, self.redactor.archived_raw(record, &self.copy)))
    }
}
