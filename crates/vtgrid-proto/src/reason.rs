//! Stable error reasons in `tonic::Status` (DESIGN §7).
//!
//! A status carries its reason twice: as the `vtgrid-reason` metadata entry (easy for any client to
//! read) and as an encoded [`pb::ErrorDetail`] in the status details (typed).

use prost::Message;
use tonic::{Code, Status};

use crate::pb::{ErrorDetail, Reason};

/// Metadata key that carries the reason name, e.g. `VOLUME_IN_USE`.
pub const REASON_METADATA: &str = "vtgrid-reason";

/// Build a status with a stable reason.
pub fn status_with_reason(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    let message = message.into();
    let detail = ErrorDetail {
        reason: reason as i32,
        message: message.clone(),
    };
    let mut status = Status::with_details(code, message, detail.encode_to_vec().into());
    if let Ok(v) = reason.as_str_name().parse() {
        status.metadata_mut().insert(REASON_METADATA, v);
    }
    status
}

/// The reason a status carries, if it came from a vtgrid node.
pub fn reason_of(status: &Status) -> Option<Reason> {
    if let Ok(detail) = ErrorDetail::decode(status.details()) {
        if let Some(r) = Reason::try_from(detail.reason)
            .ok()
            .filter(|r| *r != Reason::Unspecified)
        {
            return Some(r);
        }
    }
    let name = status.metadata().get(REASON_METADATA)?.to_str().ok()?;
    Reason::from_str_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_survives_the_status() {
        let s = status_with_reason(
            Code::FailedPrecondition,
            Reason::VolumeInUse,
            "A00001 is mounted",
        );
        assert_eq!(reason_of(&s), Some(Reason::VolumeInUse));
        assert_eq!(s.metadata().get(REASON_METADATA).unwrap(), "VOLUME_IN_USE");
    }

    #[test]
    fn every_reason_is_documented() {
        let doc = include_str!("../../../docs/errors.md");
        let mut n = 1;
        while let Ok(r) = Reason::try_from(n) {
            assert!(
                doc.contains(&format!("`{}`", r.as_str_name())),
                "docs/errors.md lacks {}",
                r.as_str_name()
            );
            n += 1;
        }
        assert!(n > 10);
    }
}
