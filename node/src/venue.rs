//! Making a venue (issue 20): its printable entry QR code and its private trace code, from
//! the health authority's venue key (`docs/PROTOCOL.md` §10). `ephemera-node venue create`
//! runs it offline on the venue's own machine, `POST /v1/venues` for a case worker or an
//! admin; both hand everything over and keep nothing: the node holds no list of venues.
//!
//! What a venue gets:
//!
//! - the QR code (SVG) of its entry code's QR text (`ephemera-venue:` + base64url), to
//!   print and hang at the entrance, and the text itself;
//! - its trace code's text (`ephemera-trace:` + base64url): the venue's master secret share
//!   and the authority's share sealed to the authority, to keep offline and hand to the
//!   health authority only when it asks for it after a case;
//! - an instruction sheet saying so.

use std::fmt;

use ephemera_proto::sealed::SealingPublicKey;
use ephemera_proto::venue::{EntryCode, VenueError, create_venue};
use ephemera_proto::{DayNumber, UnixTime};
use qrcode::QrCode;
use qrcode::render::svg;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::clock::civil::format_date;

/// How long a venue's codes are valid when no end is given: a year from the first day.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

/// The smallest side of the QR code's SVG, in pixels (it scales when printed).
const QR_MIN_SIDE: u32 = 320;

/// A venue, made: everything to hand over. `Debug` shows only the entry code (public),
/// never the trace code.
pub struct NewVenue {
    /// The entry code (public: it is what the QR code holds).
    pub entry: EntryCode,
    /// The QR code's text, `ephemera-venue:` + base64url.
    pub qr_text: String,
    /// The QR code of [`NewVenue::qr_text`] as a standalone SVG document.
    pub qr_svg: String,
    /// The trace code's text, `ephemera-trace:` + base64url: a secret.
    pub trace_text: Zeroizing<String>,
}

impl fmt::Debug for NewVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewVenue")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// The first and last day a venue's codes are valid, as the UTC instants of the entry
/// code: from the first second of `from` (default `today`) to the last second of `until`
/// (default `from` + [`DEFAULT_VALIDITY_DAYS`]).
///
/// # Errors
/// [`VenueError::BadTimeRange`] when `until` is before `from`.
pub fn validity(
    from: Option<DayNumber>,
    until: Option<DayNumber>,
    today: DayNumber,
) -> Result<(UnixTime, UnixTime), VenueError> {
    let from = from.unwrap_or(today);
    let until = until.unwrap_or(from.plus(DEFAULT_VALIDITY_DAYS));
    if until < from {
        return Err(VenueError::BadTimeRange);
    }
    Ok((from.start(), until.plus(1).start().minus_seconds(1)))
}

/// Makes a venue for the authority whose venue key is `authority`: draws its shares, seals
/// the authority's, and renders the QR code. Nothing is kept or logged.
///
/// # Errors
/// [`VenueError::TooLong`] for a description or address over 100 bytes,
/// [`VenueError::BadTimeRange`], [`VenueError::BadAuthorityKey`].
pub fn create(
    authority: &SealingPublicKey,
    description: &str,
    address: &str,
    valid_from: UnixTime,
    valid_until: UnixTime,
    rng: &mut impl CryptoRng,
) -> Result<NewVenue, VenueError> {
    let (entry, trace) = create_venue(
        authority,
        description,
        address,
        valid_from,
        valid_until,
        rng,
    )?;
    let qr_text = entry.to_qr_text();
    let qr_svg = qr_svg(&qr_text);
    Ok(NewVenue {
        entry,
        qr_text,
        qr_svg,
        trace_text: trace.to_text(),
    })
}

/// The QR code of `text` as a standalone SVG document, black on white, with the standard
/// quiet zone, at error correction level M (15 % of it may be soiled or torn).
fn qr_svg(text: &str) -> String {
    // An entry code's text is at most about 470 characters, far below level M's capacity
    // (2,331 bytes at version 40); the bound holds for every text this module makes.
    let code = QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .expect("an entry code's text fits a QR code");
    code.render::<svg::Color<'_>>()
        .min_dimensions(QR_MIN_SIDE, QR_MIN_SIDE)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build()
}

/// The printable instruction sheet for the venue: what to print, what to keep offline and
/// when to hand the trace code over. It names the venue and its validity, never the trace
/// code itself.
pub fn instruction_sheet(venue: &NewVenue) -> String {
    let entry = &venue.entry;
    format!(
        "Ephemera venue check-in: instructions for {description}\n\
         Address: {address}\n\
         Valid from {from} to {until} (UTC days)\n\
         \n\
         1. Print the QR code (entry-qr.svg) and hang it where visitors enter. Phones that \
         scan it keep an encrypted record of their visit on the phone only; nobody else \
         learns who was here or when.\n\
         2. The trace code (trace-code.txt) is the venue's secret. Keep it OFFLINE: print \
         it or copy it to a USB stick kept locked away, then delete the file from this \
         computer. Do not e-mail it, upload it or photograph it.\n\
         3. Give the trace code to the health authority ONLY when it asks for it, after a \
         case visited the venue. With it, and only together with the authority's own key, \
         the authority warns the visitors of the hours concerned; the venue alone cannot, \
         and the authority alone cannot either.\n\
         4. A lost trace code cannot be replaced: make a new venue, hang its new QR code, \
         and destroy the old one.\n\
         5. The node that made these codes kept nothing about the venue: there is no list \
         of venues anywhere.\n",
        description = entry.description(),
        address = entry.address(),
        from = format_date(entry.valid_from().day()),
        until = format_date(entry.valid_until().day()),
    )
}

#[cfg(test)]
mod tests {
    use ephemera_proto::sealed::SealingSecretKey;
    use ephemera_proto::venue::{MAX_TEXT_LEN, TraceCode, open_authority_share};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn validity_defaults_to_a_year_from_today_and_refuses_an_inverted_range() {
        let today = DayNumber(20_000);
        let (from, until) = validity(None, None, today).unwrap();
        assert_eq!(from, today.start());
        assert_eq!(until, today.plus(366).start().minus_seconds(1));
        let (from, until) = validity(Some(today), Some(today), today).unwrap();
        assert_eq!(until.0 - from.0, 86_399);
        let (from, _) = validity(Some(today.plus(7)), None, today).unwrap();
        assert_eq!(from, today.plus(7).start());
        assert_eq!(
            validity(Some(today), Some(today.minus(1)), today).unwrap_err(),
            VenueError::BadTimeRange
        );
    }

    #[test]
    fn a_new_venue_opens_for_its_authority_and_its_qr_code_holds_its_entry_code() {
        let mut rng = ChaCha20Rng::seed_from_u64(20);
        let authority = SealingSecretKey::generate(&mut rng);
        let (from, until) = validity(None, None, DayNumber(20_000)).unwrap();
        let venue = create(
            &authority.public_key(),
            "Café Nord",
            "Main Street 1",
            from,
            until,
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            EntryCode::from_qr_text(&venue.qr_text).unwrap(),
            venue.entry
        );
        let trace = TraceCode::from_text(&venue.trace_text).unwrap();
        assert_eq!(trace.entry_code(), &venue.entry);
        assert!(
            open_authority_share(&authority, &venue.entry, trace.sealed_authority_share()).is_ok()
        );
        assert!(venue.qr_svg.contains("<svg") && venue.qr_svg.ends_with("</svg>"));
        assert!(!venue.qr_svg.contains("script"));
        // Neither Debug nor the sheet gives the trace code away.
        let encoded = &venue.trace_text["ephemera-trace:".len()..];
        assert!(!format!("{venue:?}").contains(encoded));
        let sheet = instruction_sheet(&venue);
        assert!(!sheet.contains(encoded));
        assert!(sheet.contains("Café Nord") && sheet.contains("OFFLINE"));
        assert!(sheet.contains("Valid from 2024-10-04 to 2025-10-04"));
    }

    #[test]
    fn the_longest_texts_still_fit_a_qr_code() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let authority = SealingSecretKey::generate(&mut rng).public_key();
        let long = "é".repeat(MAX_TEXT_LEN / 2);
        let venue = create(&authority, &long, &long, UnixTime(0), UnixTime(1), &mut rng).unwrap();
        assert_eq!(
            EntryCode::from_qr_text(&venue.qr_text).unwrap(),
            venue.entry
        );
        assert!(
            create(
                &authority,
                &"x".repeat(MAX_TEXT_LEN + 1),
                "",
                UnixTime(0),
                UnixTime(1),
                &mut rng
            )
            .is_err()
        );
    }
}
