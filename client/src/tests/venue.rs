//! Venue check-in on the phone: check in from the QR text, check out (or automatically),
//! keep only ciphertexts, match published traces into warnings, forget after retention.

use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::venue::{EntryCode, Notice, TraceCode, VenueHour, create_venue};
use ephemera_proto::{DayNumber, UnixTime};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::forgetting::folder_bytes;
use super::util::reopen;
use crate::error::CheckInError;
use crate::store::{MemoryStore, Store};
use crate::{ClientConfig, ClientError, Phone, PhoneEvent, VenueWarning};

/// 2026-03-01T12:10:00Z.
pub(super) const ARRIVAL: UnixTime = UnixTime(1_772_367_000);
pub(super) const HOUR: u64 = 3600;
pub(super) const DAY: u64 = 86_400;
pub(super) const NAME: &str = "Café Tramway";
const ADDRESS: &str = "Rue du Marché 17, Lausanne";
pub(super) const MESSAGE: &str =
    "A case was at a place you visited. Get tested and watch for symptoms.";

/// A health authority and one venue valid all of 2026.
pub(super) struct Venue {
    authority: SealingSecretKey,
    entry: EntryCode,
    trace_code: TraceCode,
    rng: ChaCha20Rng,
}

impl Venue {
    pub(super) fn new(seed: u64, name: &str) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let authority = SealingSecretKey::generate(&mut rng);
        let (entry, trace_code) = create_venue(
            &authority.public_key(),
            name,
            ADDRESS,
            UnixTime(1_767_225_600),
            UnixTime(1_798_761_600),
            &mut rng,
        )
        .unwrap();
        Venue {
            authority,
            entry,
            trace_code,
            rng,
        }
    }

    pub(super) fn qr(&self) -> String {
        self.entry.to_qr_text()
    }

    /// What the authority publishes for a case at the venue from `from` to `until`: one
    /// trace per hour of the case.
    pub(super) fn traces(
        &mut self,
        from: UnixTime,
        until: UnixTime,
        message: &str,
    ) -> Vec<Vec<u8>> {
        let notice = Notice {
            case_from: from,
            case_until: until,
            message: message.into(),
        };
        self.trace_code
            .trace_keys(
                &self.authority,
                VenueHour::containing(from).unwrap(),
                VenueHour::containing(until).unwrap(),
            )
            .unwrap()
            .into_iter()
            .map(|key| {
                notice
                    .seal(&self.entry, key, &mut self.rng)
                    .unwrap()
                    .to_bytes()
            })
            .collect()
    }
}

pub(super) fn config() -> ClientConfig {
    ClientConfig::default().with_decoy_rate(0.0)
}

fn phone() -> Phone<MemoryStore> {
    Phone::new(config(), MemoryStore::new(), [5; 32]).unwrap()
}

pub(super) fn events<S: Store>(phone: &mut Phone<S>) -> Vec<PhoneEvent> {
    std::iter::from_fn(|| phone.poll_event()).collect()
}

pub(super) fn warnings_in(events: &[PhoneEvent]) -> Vec<VenueWarning> {
    events
        .iter()
        .filter_map(|e| match e {
            PhoneEvent::VenueWarning(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn check_in_error(result: Result<impl std::fmt::Debug, ClientError>) -> CheckInError {
    match result {
        Err(ClientError::CheckIn(e)) => e,
        other => panic!("expected a check-in error, got {other:?}"),
    }
}

#[test]
fn a_visit_becomes_one_ciphertext_per_hour_and_a_case_there_warns_once() {
    let mut venue = Venue::new(1, NAME);
    let mut phone = phone();
    let status = phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    assert_eq!(status.venue_name, NAME);
    assert_eq!(status.arrival, ARRIVAL);
    assert_eq!(status.automatic_check_out, ARRIVAL.plus_seconds(12 * HOUR));
    assert_eq!(phone.open_check_in(), Some(status));
    // 12:10 to 13:40: two venue hours.
    assert_eq!(phone.check_out(ARRIVAL.plus_seconds(90 * 60)).unwrap(), 2);
    assert_eq!(phone.open_check_in(), None);
    assert_eq!(phone.store().check_ins().unwrap().len(), 2);
    assert!(
        phone
            .store()
            .meta(crate::store::MetaKey::OpenCheckIn)
            .unwrap()
            .is_none()
    );

    // A case there from 13:00 to 14:30: the hours 13 and 14 are published.
    let case_from = ARRIVAL.plus_seconds(50 * 60);
    let mut published = venue.traces(case_from, case_from.plus_seconds(90 * 60), MESSAGE);
    published.push(vec![1; 40]);
    let now = ARRIVAL.plus_seconds(2 * DAY);
    let summary = phone.match_venue_traces(now, &published).unwrap();
    assert_eq!(summary.traces, 3);
    assert_eq!(summary.undecodable, 1);
    assert_eq!(summary.attempts, 1, "only the check-in of hour 13 is tried");
    assert_eq!(summary.new_warnings, 1);
    let expected = VenueWarning {
        day: ARRIVAL.day(),
        hours: vec![VenueHour::containing(case_from).unwrap()],
        message: MESSAGE.into(),
    };
    assert_eq!(warnings_in(&events(&mut phone)), vec![expected.clone()]);
    assert_eq!(phone.venue_warnings().unwrap(), vec![expected.clone()]);

    // The same traces again (the next download): nothing new.
    let again = phone
        .match_venue_traces(now.plus_seconds(HOUR), &published)
        .unwrap();
    assert_eq!(again.new_warnings, 0);
    assert!(warnings_in(&events(&mut phone)).is_empty());
    assert_eq!(phone.venue_warnings().unwrap(), vec![expected]);
}

#[test]
fn a_case_at_another_time_or_another_venue_does_not_warn() {
    let mut venue = Venue::new(2, NAME);
    let mut other = Venue::new(3, "Bar Elsewhere");
    let mut phone = phone();
    phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    phone.check_out(ARRIVAL.plus_seconds(30 * 60)).unwrap();
    // The same hour, but the case came after the user left; and another venue's case of
    // the same hour.
    let mut published = venue.traces(
        ARRIVAL.plus_seconds(40 * 60),
        ARRIVAL.plus_seconds(45 * 60),
        MESSAGE,
    );
    published.extend(other.traces(ARRIVAL, ARRIVAL.plus_seconds(HOUR), MESSAGE));
    let summary = phone
        .match_venue_traces(ARRIVAL.plus_seconds(DAY), &published)
        .unwrap();
    assert_eq!(summary.attempts, 2);
    assert_eq!(summary.new_warnings, 0);
    assert!(warnings_in(&events(&mut phone)).is_empty());
    assert!(phone.venue_warnings().unwrap().is_empty());
}

#[test]
fn bad_codes_a_second_check_in_and_a_check_out_without_one_are_refused() {
    let venue = Venue::new(4, NAME);
    let mut phone = phone();
    let mut now = ARRIVAL;
    for text in [
        "",
        "https://example.org/",
        "ephemera-venue:!!!",
        "ephemera-venue:AAAA",
    ] {
        assert!(
            matches!(
                check_in_error(phone.check_in(now, text)),
                CheckInError::BadCode(_)
            ),
            "{text:?}"
        );
    }
    // Padded codes, and codes whose venue key was altered, are no codes.
    let qr = venue.qr();
    let mut altered = qr.clone().into_bytes();
    let in_key = ephemera_proto::venue::QR_TEXT_PREFIX.len() + 20;
    altered[in_key] = if altered[in_key] == b'A' { b'B' } else { b'A' };
    for text in [format!("{qr}="), String::from_utf8(altered).unwrap()] {
        assert!(matches!(
            check_in_error(phone.check_in(now, &text)),
            CheckInError::BadCode(_)
        ));
    }
    let early = EntryCode::new(
        *venue.entry.master_public_key(),
        NAME,
        ADDRESS,
        ARRIVAL.plus_seconds(DAY),
        ARRIVAL.plus_seconds(2 * DAY),
        &mut ChaCha20Rng::seed_from_u64(5),
    )
    .unwrap()
    .to_qr_text();
    assert_eq!(
        check_in_error(phone.check_in(now, &early)),
        CheckInError::NotYetValid
    );
    for day in 1..=3 {
        now = ARRIVAL.plus_seconds(day * DAY);
        phone.handle_timeout(now).unwrap();
    }
    assert_eq!(
        check_in_error(phone.check_in(now, &early)),
        CheckInError::Expired
    );
    assert_eq!(
        check_in_error(phone.check_out(now)),
        CheckInError::NotCheckedIn
    );
    phone.check_in(now, &venue.qr()).unwrap();
    assert_eq!(
        check_in_error(phone.check_in(now.plus_seconds(60), &venue.qr())),
        CheckInError::AlreadyCheckedIn
    );
    assert_eq!(CheckInError::AlreadyCheckedIn.code(), "already-checked-in");
    // Whitespace around what the camera read is fine (the one open check-in was kept).
    phone.check_out(now.plus_seconds(120)).unwrap();
    phone
        .check_in(now.plus_seconds(180), &format!("  {}\n", venue.qr()))
        .unwrap();
    assert!(phone.store().check_ins().unwrap().len() == 1);
}

#[test]
fn a_forgotten_check_in_is_checked_out_at_the_longest_stay() {
    let mut venue = Venue::new(6, NAME);
    let mut config = config();
    config.venue.max_stay_seconds = 2 * 3600;
    let mut phone = Phone::new(config, MemoryStore::new(), [6; 32]).unwrap();
    phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    let due = ARRIVAL.plus_seconds(2 * HOUR);
    let mut timer = phone.poll_timeout().unwrap();
    while timer < due {
        phone.handle_timeout(timer).unwrap();
        assert!(phone.open_check_in().is_some());
        timer = phone.poll_timeout().unwrap();
    }
    assert!(timer <= due, "the phone wakes for the automatic check-out");
    phone.handle_timeout(due).unwrap();
    assert_eq!(phone.open_check_in(), None);
    assert!(events(&mut phone).contains(&PhoneEvent::VenueCheckedOut));
    // 12:10 to 14:10: three hours, and the visit ends at the longest stay.
    assert_eq!(phone.store().check_ins().unwrap().len(), 3);
    assert_eq!(
        check_in_error(phone.check_out(due.plus_seconds(60))),
        CheckInError::NotCheckedIn
    );
    let late = venue.traces(due.plus_seconds(60), due.plus_seconds(600), MESSAGE);
    let during = venue.traces(due.minus_seconds(600), due.minus_seconds(300), MESSAGE);
    let now = due.plus_seconds(DAY);
    assert_eq!(
        phone.match_venue_traces(now, &late).unwrap().new_warnings,
        0
    );
    assert_eq!(
        phone.match_venue_traces(now, &during).unwrap().new_warnings,
        1
    );
}

#[test]
fn check_ins_and_warnings_go_after_retention() {
    let mut venue = Venue::new(7, NAME);
    let mut phone = phone();
    phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    phone.check_out(ARRIVAL.plus_seconds(600)).unwrap();
    let traces = venue.traces(ARRIVAL, ARRIVAL.plus_seconds(300), MESSAGE);
    phone
        .match_venue_traces(ARRIVAL.plus_seconds(DAY), &traces)
        .unwrap();
    assert_eq!(phone.venue_warnings().unwrap().len(), 1);
    // Still there on the last day of retention (14 days), gone the day after (the clock
    // moves a day at a time: a larger jump purges nothing until confirmed).
    let last_kept = ARRIVAL.day().0 + 14;
    for day in ARRIVAL.day().0 + 2..=last_kept {
        phone
            .handle_timeout(DayNumber(day).start().plus_seconds(60))
            .unwrap();
    }
    assert_eq!(phone.store().check_ins().unwrap().len(), 1);
    assert_eq!(phone.venue_warnings().unwrap().len(), 1);
    phone
        .handle_timeout(DayNumber(last_kept + 1).start().plus_seconds(60))
        .unwrap();
    assert!(phone.store().check_ins().unwrap().is_empty());
    assert!(phone.venue_warnings().unwrap().is_empty());
}

#[test]
fn the_open_check_in_survives_a_restart_and_the_folder_keeps_no_venue_after_check_out() {
    let mut venue = Venue::new(8, NAME);
    let dir = tempfile::tempdir().unwrap();
    let qr = venue.qr();
    {
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let mut phone = Phone::new(config(), store, [8; 32]).unwrap();
        phone.check_in(ARRIVAL, &qr).unwrap();
    }
    let store = reopen(dir.path());
    let mut phone = Phone::new(config(), store, [9; 32]).unwrap();
    assert_eq!(phone.open_check_in().unwrap().venue_name, NAME);
    assert_eq!(phone.check_out(ARRIVAL.plus_seconds(1200)).unwrap(), 1);
    let traces = venue.traces(ARRIVAL, ARRIVAL.plus_seconds(600), MESSAGE);
    assert_eq!(
        phone
            .match_venue_traces(ARRIVAL.plus_seconds(DAY), &traces)
            .unwrap()
            .new_warnings,
        1
    );
    drop(phone);
    let disk = folder_bytes(dir.path());
    let entry = venue.entry.to_bytes();
    let mpk = venue.entry.master_public_key().to_bytes();
    for (what, needle) in [
        ("name", NAME.as_bytes()),
        ("address", ADDRESS.as_bytes()),
        ("QR text", qr.as_bytes()),
        ("QR payload", &qr.as_bytes()[20..60]),
        ("entry code", &entry[..]),
        ("venue key", &mpk[..]),
        ("message", MESSAGE.as_bytes()),
    ] {
        assert!(
            !disk.windows(needle.len()).any(|w| w == needle),
            "the {what} is in the folder"
        );
    }
    // The check-in and the warning are there, sealed: a new phone reads them back.
    let store = reopen(dir.path());
    let phone = Phone::new(config(), store, [10; 32]).unwrap();
    assert_eq!(phone.store().check_ins().unwrap().len(), 1);
    assert_eq!(phone.venue_warnings().unwrap()[0].message, MESSAGE);
}

#[test]
fn erasing_all_data_drops_the_open_check_in() {
    let venue = Venue::new(11, NAME);
    let mut phone = phone();
    phone.check_in(ARRIVAL, &venue.qr()).unwrap();
    phone.erase_all_data().unwrap();
    assert_eq!(phone.open_check_in(), None);
    assert!(
        phone
            .store()
            .meta(crate::store::MetaKey::OpenCheckIn)
            .unwrap()
            .is_none()
    );
    phone
        .check_in(ARRIVAL.plus_seconds(60), &venue.qr())
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the camera reads, a check-in either opens or says why; nothing panics.
    #[test]
    fn any_scanned_text_is_refused_cleanly(text in ".{0,300}", suffix in "[A-Za-z0-9_-]{0,400}") {
        let mut phone = phone();
        for candidate in [text, format!("ephemera-venue:{suffix}")] {
            match phone.check_in(ARRIVAL, &candidate) {
                Err(ClientError::CheckIn(CheckInError::BadCode(_))) => {}
                other => prop_assert!(false, "{other:?}"),
            }
        }
        prop_assert!(phone.open_check_in().is_none());
    }

    /// Whatever a node serves as venue traces, matching counts what does not decode and
    /// goes on; nothing panics.
    #[test]
    fn any_trace_bytes_are_counted_and_skipped(
        traces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..8),
    ) {
        let mut phone = phone();
        let summary = phone.match_venue_traces(ARRIVAL, &traces).unwrap();
        prop_assert_eq!(summary.traces, traces.len());
        prop_assert_eq!(summary.new_warnings, 0);
    }
}

/// `client/bindings/python/venue_fixture.json`: a venue's QR text and the traces of a
/// case there, for the Python test (a phone never makes traces: only a venue's trace code
/// and the authority's key do). Deterministic (seeded); regenerated with
/// `EPHEMERA_WRITE_FIXTURE=1`, and checked to be what this code makes.
#[test]
fn the_python_venue_fixture_is_current() {
    let mut venue = Venue::new(20, NAME);
    let mut elsewhere = Venue::new(21, "Bar Elsewhere");
    let case_from = ARRIVAL.plus_seconds(20 * 60);
    let case_until = ARRIVAL.plus_seconds(40 * 60);
    let hex = |traces: Vec<Vec<u8>>| -> Vec<String> {
        traces
            .iter()
            .map(|t| t.iter().map(|b| format!("{b:02x}")).collect())
            .collect()
    };
    let json = serde_json::json!({
        "qr_text": venue.qr(),
        "venue_name": NAME,
        "venue_address": ADDRESS,
        "arrival": ARRIVAL.0,
        "case_hour_start": VenueHour::containing(case_from).unwrap().start().0,
        "message": MESSAGE,
        "traces_of_the_case": hex(venue.traces(case_from, case_until, MESSAGE)),
        "traces_later_that_day": hex(venue.traces(
            ARRIVAL.plus_seconds(3 * HOUR),
            ARRIVAL.plus_seconds(4 * HOUR),
            MESSAGE,
        )),
        "traces_of_another_venue": hex(elsewhere.traces(case_from, case_until, MESSAGE)),
    });
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/python/venue_fixture.json");
    if std::env::var_os("EPHEMERA_WRITE_FIXTURE").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == text,
        "{} is stale: run with EPHEMERA_WRITE_FIXTURE=1",
        path.display()
    );
}
