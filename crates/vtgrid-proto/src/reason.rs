//! Stable error reasons in `tonic::Status` (DESIGN §7), in the standard gRPC error model.
//!
//! A refused call carries its reason twice:
//! - in `grpc-status-details-bin`, a `google.rpc.Status` whose details hold a
//!   `google.rpc.ErrorInfo { reason, domain: "vtgrid.dev" }`, which any gRPC client's generic
//!   decoder reads (Python's `grpc_status.rpc_status.from_call`, Go's `status.FromError`,
//!   grpcurl); plus a `RetryInfo` when waiting and retrying helps, a `PreconditionFailure` for a
//!   state the call needs, a `BadRequest` naming a bad field;
//! - as the `vtgrid-reason` metadata entry, for a client that reads headers only.
//!
//! [`status_with_reason`] is the one place a reason becomes a status, [`reason_of`] the one place
//! it is read back.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::pb::Reason;

/// Metadata key that carries the reason name, e.g. `VOLUME_IN_USE`.
pub const REASON_METADATA: &str = "vtgrid-reason";

/// `google.rpc.ErrorInfo.domain` of every vtgrid reason.
pub const DOMAIN: &str = "vtgrid.dev";

/// How long a client should wait before it retries a call refused for `reason`, or None when
/// retrying the same call cannot help (fix the input, or do something else first). The delays
/// are hints of the order of the grid's own timers (a Raft election, a peer probe).
pub fn retry_delay(reason: Reason) -> Option<Duration> {
    use Reason::*;
    let ms = match reason {
        CatalogUnavailable | TakeoverNeedsMajority => 1_000,
        OwnerUnreachable | SyncPeerUnavailable | NoValidCopy => 2_000,
        ShuttingDown | ServiceMode => 5_000,
        TruncatedStream | StaleEpoch => 0,
        VolumeInUse => 1_000,
        NoDeviceAvailable => 5_000,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Build a status with a stable reason.
pub fn status_with_reason(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    status_with_details(code, reason, message, None)
}

/// [`status_with_reason`] for a request field that is wrong: the details also carry a
/// `google.rpc.BadRequest` naming `field`.
pub fn status_with_bad_field(
    code: Code,
    reason: Reason,
    message: impl Into<String>,
    field: &str,
    problem: &str,
) -> Status {
    status_with_details(code, reason, message, Some((field, problem)))
}

fn status_with_details(
    code: Code,
    reason: Reason,
    message: impl Into<String>,
    bad_field: Option<(&str, &str)>,
) -> Status {
    let message = message.into();
    // No metadata: a map here would be encoded in hash order, and a simulation compares bytes.
    let mut details = ErrorDetails::with_error_info(
        reason.as_str_name(),
        DOMAIN,
        HashMap::<String, String>::new(),
    );
    if let Some(delay) = retry_delay(reason) {
        details.set_retry_info(Some(delay));
    }
    if code == Code::FailedPrecondition {
        details.add_precondition_failure_violation(reason.as_str_name(), "", message.clone());
    }
    if let Some((field, problem)) = bad_field {
        details.add_bad_request_violation(field, problem);
    }
    let mut status = Status::with_error_details(code, message, details);
    if let Ok(v) = reason.as_str_name().parse() {
        status.metadata_mut().insert(REASON_METADATA, v);
    }
    status
}

/// The reason a status carries, if it came from a vtgrid node.
pub fn reason_of(status: &Status) -> Option<Reason> {
    if let Some(info) = status.get_details_error_info() {
        if info.domain == DOMAIN {
            if let Some(r) =
                Reason::from_str_name(&info.reason).filter(|r| *r != Reason::Unspecified)
            {
                return Some(r);
            }
        }
    }
    let name = status.metadata().get(REASON_METADATA)?.to_str().ok()?;
    Reason::from_str_name(name)
}

/// Every reason but `REASON_UNSPECIFIED`, in number order.
pub fn all_reasons() -> Vec<Reason> {
    (1..).map_while(|n| Reason::try_from(n).ok()).collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;

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

    /// What a generic decoder does (Python's `rpc_status.from_call`): decode the details as a
    /// `google.rpc.Status`, require its code and message to be the call's, unpack ErrorInfo.
    #[test]
    fn every_reason_reads_back_as_a_google_rpc_status_with_error_info() {
        for reason in all_reasons() {
            let message = format!("refused: {}", reason.as_str_name());
            let s = status_with_reason(Code::Unavailable, reason, message.clone());
            let rpc = tonic_types::Status::decode(s.details()).expect("a google.rpc.Status");
            assert_eq!(rpc.code, Code::Unavailable as i32, "{reason:?}");
            assert_eq!(rpc.message, message, "{reason:?}");
            let info = rpc
                .details
                .iter()
                .find(|a| a.type_url == "type.googleapis.com/google.rpc.ErrorInfo")
                .unwrap_or_else(|| panic!("{reason:?}: no ErrorInfo in {:?}", rpc.details));
            let info = tonic_types::pb::ErrorInfo::decode(info.value.as_slice()).unwrap();
            assert_eq!(info.reason, reason.as_str_name());
            assert_eq!(info.domain, DOMAIN);
            assert_eq!(reason_of(&s), Some(reason));
        }
    }

    #[test]
    fn retryable_reasons_carry_retry_info_and_others_do_not() {
        let s = status_with_reason(Code::Unavailable, Reason::CatalogUnavailable, "no leader");
        assert_eq!(
            s.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(1))
        );
        let s = status_with_reason(Code::InvalidArgument, Reason::InvalidVolser, "bad");
        assert!(s.get_details_retry_info().is_none());
        let s = status_with_bad_field(
            Code::InvalidArgument,
            Reason::InvalidArgument,
            "page_size: too big",
            "page_size",
            "too big",
        );
        let bad = s.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "page_size");
        let s = status_with_reason(Code::FailedPrecondition, Reason::NotOwner, "C1 owns it");
        assert_eq!(
            s.get_details_precondition_failure().unwrap().violations[0].r#type,
            "NOT_OWNER"
        );
    }

    #[test]
    fn a_status_without_details_still_gives_its_metadata_reason() {
        let mut s = Status::unavailable("plain");
        s.metadata_mut()
            .insert(REASON_METADATA, "SHUTTING_DOWN".parse().unwrap());
        assert_eq!(reason_of(&s), Some(Reason::ShuttingDown));
        assert_eq!(reason_of(&Status::internal("no reason")), None);
    }

    #[test]
    fn every_reason_is_documented() {
        let doc = include_str!("../../../docs/errors.md");
        let all = all_reasons();
        for r in &all {
            assert!(
                doc.contains(&format!("`{}`", r.as_str_name())),
                "docs/errors.md lacks {}",
                r.as_str_name()
            );
        }
        assert!(all.len() > 10);
    }
}
