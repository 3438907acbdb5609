//! The constraints of the HTTP contract, each defined once: the handlers enforce them with
//! the checks here, and the OpenAPI document ([`super::openapi_document`]) states the same
//! figures and patterns. `node/tests/it/contract.rs` evaluates the document's patterns
//! against what the node accepts and refuses.

use ephemera_proto::batch::BatchId;

/// `GET /v1/batches/{id}`: SHA-256 of the batch, 64 hex characters (either case).
pub const BATCH_ID_PATTERN: &str = "^[0-9A-Fa-f]{64}$";
/// `GET /v1/exports/{file}`: `<start>-<end>-<number>.zip`, unix seconds and a five-digit
/// (or longer) sequence number, as the publisher names them.
pub const EXPORT_FILE_PATTERN: &str = "^[0-9]{1,20}-[0-9]{1,20}-[0-9]{5,20}\\.zip$";
/// `GET /v1/batches?after=`: the largest cursor, `i64::MAX`, so that clients with signed
/// 64-bit integers can hold every value the node accepts.
pub const MAX_CURSOR: u64 = i64::MAX as u64;
/// `POST /v1/session`: the longest account name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// `POST /v1/session`: the longest password, in characters (generated ones have 24).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// An account's name (`POST /v1/accounts`, `/v1/accounts/{name}/...`): 1 to 64 letters,
/// digits, `.`, `_`, `-` or `@` (ASCII), starting with a letter or digit
/// ([`crate::accounts::is_account_name`]).
pub const ACCOUNT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$";
/// `POST /v1/codes`: a symptom onset, `YYYY-MM-DD` (and a real calendar day).
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// A code as the node issues it: 16 Crockford base32 symbols in groups of four.
pub const ISSUED_CODE_PATTERN: &str =
    "^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$";
/// A code as a person may type it (`ephemera_proto::auth::UploadCode::parse`): 16 symbols
/// of Crockford base32 in either case, where O reads as 0 and I, L as 1 (so every ASCII
/// letter but U), with any dashes and spaces around them.
pub const TYPED_CODE_PATTERN: &str = "^[ -]*([0-9A-TV-Za-tv-z][ -]*){16}$";
/// A code's reference as a person may type it (`crate::store::CodeReference::parse`): 12
/// symbols read as codes are, with dashes and spaces around them, at most
/// [`MAX_REFERENCE_CHARS`] in all.
pub const TYPED_REFERENCE_PATTERN: &str = "^[ -]*([0-9A-TV-Za-tv-z][ -]*){12}$";
/// The most characters of a typed reference.
pub const MAX_REFERENCE_CHARS: usize = 48;
/// `POST /v1/venues`: the longest description or address the document states, in
/// characters: the node's cap is 100 bytes of UTF-8
/// (`ephemera_proto::venue::MAX_TEXT_LEN`), which 100 ASCII characters meet; longer
/// characters count more than one byte, and 101 bytes get 400 `invalid-parameter`.
pub const MAX_VENUE_TEXT_ASCII: usize = ephemera_proto::venue::MAX_TEXT_LEN;
/// An API key's public id: 16 hex digits.
pub const API_KEY_ID_PATTERN: &str = "^[0-9A-Fa-f]{16}$";

/// The batch id of a path segment, if it matches [`BATCH_ID_PATTERN`].
pub fn batch_id(text: &str) -> Option<BatchId> {
    // `from_hex` takes exactly 32 bytes of hex in either case: the pattern, no more.
    BatchId::from_hex(text)
}

/// Whether `name` matches [`EXPORT_FILE_PATTERN`].
pub fn is_export_file(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".zip") else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let [start, end, number] = parts.as_slice() else {
        return false;
    };
    let digits = |s: &str, min: usize| {
        (min..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    digits(start, 1) && digits(end, 1) && digits(number, 5)
}

/// Whether `text` matches [`DATE_PATTERN`] (the calendar check is `civil::parse_date`'s).
pub fn is_date_shaped(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Whether a string of `text`'s length lies in `1..=max` characters (JSON Schema counts
/// characters, not bytes).
pub fn length_fits(text: &str, max: usize) -> bool {
    let chars = text.chars().count();
    (1..=max).contains(&chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names_the_publisher_writes_fit() {
        assert!(is_export_file("1700000000-1700086400-00001.zip"));
        assert!(is_export_file("1-2-00001.zip"));
        for bad in [
            "1-2-1.zip",
            "1-2-00001.ZIP",
            "1-2-00001",
            "a-2-00001.zip",
            "1-2-3-00001.zip",
            "-2-00001.zip",
            "../1-2-00001.zip",
            "123456789012345678901-2-00001.zip",
        ] {
            assert!(!is_export_file(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_shaped_yyyy_mm_dd() {
        assert!(is_date_shaped("2026-12-06"));
        for bad in ["2026-1-06", " 2026-12-06", "+026-12-06", "2026/12/06", ""] {
            assert!(!is_date_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters() {
        assert!(length_fits("é", 1));
        assert!(!length_fits("", 1));
        assert!(!length_fits("ab", 1));
    }
}
