//! A venue and a case worker's trace request, as the venue tests of both test binaries
//! (`it`, `federation`) make them.

use base64::Engine as _;
use ephemera_proto::UnixTime;
use ephemera_proto::venue::{EntryCode, TRACE_TEXT_PREFIX, create_venue};

/// The authority's message to the people warned.
pub(crate) const MESSAGE: &str = "You were near a case: get tested.";
/// The venue's name.
pub(crate) const DESCRIPTION: &str = "Cafe Lindenhof";
/// The venue's address.
pub(crate) const ADDRESS: &str = "Lindenstrasse 12";

/// A venue of the authority whose venue key `key` is: its entry code and trace code.
pub(crate) fn venue(key: &ephemera_proto::sealed::SealingSecretKey) -> (EntryCode, Vec<u8>) {
    let (entry, code) = create_venue(
        &key.public_key(),
        DESCRIPTION,
        ADDRESS,
        UnixTime(0),
        UnixTime(u64::MAX),
        &mut rand::rng(),
    )
    .unwrap();
    let bytes = code.to_bytes().to_vec();
    let sent = trace_body(&bytes, UnixTime(0), UnixTime(0), "");
    assert_eq!(
        sent["trace_code"],
        code.to_text().as_str(),
        "the venue's own text"
    );
    (entry, bytes)
}

/// A trace request as a case worker sends it: the trace code's text, in the form the venue
/// got it (`TraceCode::to_text`), also for bytes that are no trace code.
pub(crate) fn trace_body(
    code: &[u8],
    from: UnixTime,
    until: UnixTime,
    message: &str,
) -> serde_json::Value {
    serde_json::json!({
        "trace_code": format!(
            "{TRACE_TEXT_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(code)
        ),
        "case_from": from.0,
        "case_until": until.0,
        "message": message,
    })
}
