//! The authority's statistics (issue 17 item 7) over HTTP: codes issued, used, revoked and
//! expired, uploads and batches counted per day and test type; small counts suppressed;
//! JSON, CSV and an SVG chart for auditors and admins only; the counts survive a restart
//! and go after `stats_days`; the stored counters hold days, types and numbers only.

use std::path::Path;

use ephemera_node::clock::ManualClock;
use ephemera_node::clock::civil::format_date;
use ephemera_node::store::StatsKey;
use ephemera_proto::auth::ReportHmacKey;
use ephemera_proto::{DayNumber, UnixTime};

use crate::util::*;

/// The count shown for `day`, `metric` and `test_type` (`None`: batches).
fn cell(
    report: &serde_json::Value,
    day: DayNumber,
    metric: &str,
    test_type: Option<&str>,
) -> serde_json::Value {
    let day = format_date(day);
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["day"] == day.as_str()
                && r["metric"] == metric
                && r["test_type"] == serde_json::json!(test_type)
        })
        .unwrap_or_else(|| panic!("no cell {day} {metric} {test_type:?}"))["count"]
        .clone()
}

/// Asserts the stored counters are days, metrics, types and numbers only: every key of the
/// `stats` tree decodes as one, every value is 8 bytes. Returns how many there are.
pub(crate) async fn assert_stats_hold_only_counts(dir: &Path) -> usize {
    let db = sled_open(&dir.join(ephemera_node::node::DB_DIR)).await;
    let tree = db.open_tree("stats").unwrap();
    let mut n = 0;
    for item in tree.iter() {
        let (key, value) = item.unwrap();
        assert!(StatsKey::from_bytes(&key).is_some(), "{key:?}");
        assert_eq!(value.len(), 8);
        n += 1;
    }
    n
}

/// `GET path` with `session` and `Accept: accept`.
async fn get_as(node: &TestNode, path: &str, session: &str, accept: &str) -> Response {
    let auth = format!("Bearer {session}");
    request(
        node.addr,
        "GET",
        path,
        &[("Authorization", &auth), ("Accept", accept)],
        b"",
    )
    .await
}

/// Parses `svg` as XML to its end; the element names it holds.
fn xml_elements(svg: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for event in xml::reader::EventReader::new(svg) {
        match event.expect("the chart is well-formed XML") {
            xml::reader::XmlEvent::StartElement { name, .. } => names.push(name.local_name),
            _ => continue,
        }
    }
    names
}

#[tokio::test]
async fn auditors_read_daily_counts_with_small_ones_suppressed_as_json_csv_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let node = TestNode::start(dir.path(), clock.clone()).await;
    let admin = node.login().await;
    let (_, ada_password) = node.staff(&admin, "ada", &["auditor"]).await;
    let (carol, carol_password) = node
        .staff(&admin, "carol", &["case-worker", "bulk-issuer"])
        .await;
    let day0 = T0.day();

    // Six confirmed codes and two likely ones; five confirmed are used by an upload each,
    // one is revoked, the two likely ones expire unused.
    let confirmed = node.issue(&carol, "confirmed", None, 6).await;
    let likely = node.issue(&carol, "likely", None, 2).await;
    for issued in &confirmed.codes[..5] {
        let contents = pet_contents(2, day0);
        let hmac_key = ReportHmacKey::generate(&mut rand::rng());
        let certificate = node
            .certify(&issued.code, &contents, &hmac_key)
            .await
            .unwrap();
        let upload = ephemera_proto::upload::SignedUpload {
            contents,
            certificate,
            hmac_key,
        };
        let sent = node
            .upload_body(ephemera_proto::upload::UploadBody::RealV1(upload))
            .await;
        assert_eq!(sent.status, 200);
    }
    let revoke = format!("/v1/codes/{}/revoke", confirmed.codes[5].reference);
    assert_eq!(node.call("POST", &revoke, &carol, None).await.status, 200);
    let cut = node.next_batches().await;
    assert!(!cut.is_empty());
    let batch_day = cut[0].created_at.day();
    let batches = cut
        .iter()
        .filter(|b| b.created_at.day() == batch_day)
        .count() as u64;
    // Past the likely codes' expiry day the purge finds them unused: expired, once.
    let expiry = UnixTime(likely.codes[0].expires_at).day();
    clock.set(expiry.plus(1).start().plus_seconds(60));
    node.node.purge().unwrap();
    node.node.purge().unwrap();
    let ada = node.login_as("ada", &ada_password).await;
    let carol = node.login_as("carol", &carol_password).await;
    let range = format!(
        "/v1/stats?from={}&to={}",
        format_date(day0),
        format_date(expiry.plus(1))
    );

    // Roles: a case worker is refused, no session is unauthorised.
    node.call("GET", &range, &carol, None)
        .await
        .assert_error(403, "forbidden");
    node.get(&range).await.assert_error(401, "unauthorized");
    node.get("/v1/stats/chart.svg")
        .await
        .assert_error(401, "unauthorized");
    node.call("GET", "/v1/stats/chart.svg", &carol, None)
        .await
        .assert_error(403, "forbidden");
    // Ranges and metrics that are not ones.
    let today = clock_day(&clock);
    for bad in [
        "/v1/stats?from=2023-13-01".to_owned(),
        "/v1/stats?to=yesterday".to_owned(),
        "/v1/stats?from=2023-01-01&from=2023-01-02".to_owned(),
        format!(
            "/v1/stats?from={}&to={}",
            format_date(today),
            format_date(today.minus(1))
        ),
        format!(
            "/v1/stats?from={}&to={}",
            format_date(today.minus(366)),
            format_date(today)
        ),
        "/v1/stats/chart.svg?metric=codes".to_owned(),
        "/v1/stats/chart.svg?metric=".to_owned(),
    ] {
        node.call("GET", &bad, &ada, None)
            .await
            .assert_error(400, "invalid-parameter");
    }
    let year = format!(
        "/v1/stats?from={}&to={}",
        format_date(today.minus(365)),
        format_date(today)
    );
    assert_eq!(node.call("GET", &year, &ada, None).await.status, 200);

    // JSON, default threshold 5: 6 and 5 shown, 1 and 2 as "<5", 0 as 0.
    let read = node.call("GET", &range, &ada, None).await;
    assert_eq!(read.status, 200, "{}", String::from_utf8_lossy(&read.body));
    assert_eq!(read.header("cache-control"), Some("no-store"));
    let report = read.json();
    assert_eq!(report["min_count"], 5);
    assert_eq!(cell(&report, day0, "codes_issued", Some("confirmed")), 6);
    assert_eq!(cell(&report, day0, "codes_issued", Some("likely")), "<5");
    assert_eq!(cell(&report, day0, "codes_issued", Some("negative")), 0);
    assert_eq!(cell(&report, day0, "codes_used", Some("confirmed")), 5);
    assert_eq!(
        cell(&report, day0, "uploads_accepted", Some("confirmed")),
        5
    );
    assert_eq!(cell(&report, day0, "uploads_relayed", Some("confirmed")), 0);
    assert_eq!(
        cell(&report, day0, "codes_revoked", Some("confirmed")),
        "<5"
    );
    assert_eq!(cell(&report, expiry, "codes_expired", Some("likely")), "<5");
    assert_eq!(cell(&report, expiry, "codes_expired", Some("confirmed")), 0);
    let shown_batches = cell(&report, batch_day, "batches_published", None);
    if batches < 5 {
        assert_eq!(shown_batches, "<5");
    } else {
        assert_eq!(shown_batches, batches);
    }
    // No figure a suppressed cell could be worked back from: no totals anywhere.
    let text = String::from_utf8(read.body.clone()).unwrap();
    assert!(!text.contains("total"), "{text}");
    assert!(!text.contains("\"1\"") && !text.contains("\"2\""));

    // CSV, as GET /v1/audit: Accept: text/csv.
    let csv = get_as(&node, &range, &ada, "text/csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let csv = String::from_utf8(csv.body).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "day,metric,test_type,count");
    let day0_text = format_date(day0);
    for line in [
        format!("{day0_text},codes_issued,confirmed,6"),
        format!("{day0_text},codes_issued,likely,<5"),
        format!("{day0_text},codes_revoked,confirmed,<5"),
        format!("{day0_text},uploads_accepted,confirmed,5"),
    ] {
        assert!(lines.contains(&line.as_str()), "{line} in {csv}");
    }

    // The chart: SVG that parses, no script, a title and a description, the suppressed
    // bar marked and its value nowhere; served under a policy that forbids script.
    let chart_path = format!(
        "/v1/stats/chart.svg?from={}&to={}&metric=codes_issued",
        format_date(day0),
        format_date(expiry.plus(1))
    );
    let chart = node.call("GET", &chart_path, &ada, None).await;
    assert_eq!(chart.status, 200);
    assert!(
        chart
            .header("content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    let csp = chart.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    let elements = xml_elements(&chart.body);
    assert!(!elements.iter().any(|e| e.eq_ignore_ascii_case("script")));
    assert!(
        !elements
            .iter()
            .any(|e| e == "foreignObject" || e == "image" || e == "a")
    );
    assert!(elements.contains(&"title".to_owned()) && elements.contains(&"desc".to_owned()));
    let svg = String::from_utf8(chart.body).unwrap();
    assert!(
        svg.contains(&format!("{day0_text}, likely: &lt;5")),
        "{svg}"
    );
    assert!(svg.contains(&format!("{day0_text}, confirmed: 6")), "{svg}");
    assert!(!svg.contains("likely: 2"));
    assert!(!svg.contains("href") && !svg.contains("url("));
    for metric in [
        "codes_used",
        "codes_expired",
        "codes_revoked",
        "uploads_accepted",
        "uploads_relayed",
        "batches_published",
    ] {
        let path = format!("/v1/stats/chart.svg?metric={metric}");
        let chart = node.call("GET", &path, &ada, None).await;
        assert_eq!(chart.status, 200, "{metric}");
        xml_elements(&chart.body);
    }

    // Each read is on the audit trail as an export by the account that read.
    let trail = node.call("GET", "/v1/audit", &ada, None).await.json();
    let exports = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "account:ada" && r["action"] == "exported")
        .count();
    // Ten reads that answered 200 and this one; the refused ones read nothing.
    assert_eq!(exports, 11);
    // The admin reads too.
    let admin = node.login().await;
    assert_eq!(node.call("GET", &range, &admin, None).await.status, 200);
    node.stop().await;
    // Issued (2 types), used, revoked, accepted, expired, batches.
    assert_eq!(assert_stats_hold_only_counts(dir.path()).await, 7);

    // A restart keeps the counts; with a threshold of 1 every count is exact.
    let mut config = test_config(dir.path());
    config.authority.stats_min_count = 1;
    // The clock moved days past the last cut while the node ran: not a step.
    config.publication.clock_max_start_gap_seconds = 30 * 86_400;
    let node = TestNode::start_with(config.clone(), clock.clone()).await;
    let ada = node.login_as("ada", &ada_password).await;
    let report = node.call("GET", &range, &ada, None).await.json();
    assert_eq!(report["min_count"], 1);
    assert_eq!(cell(&report, day0, "codes_issued", Some("confirmed")), 6);
    assert_eq!(cell(&report, day0, "codes_issued", Some("likely")), 2);
    assert_eq!(cell(&report, day0, "codes_revoked", Some("confirmed")), 1);
    assert_eq!(cell(&report, day0, "codes_used", Some("confirmed")), 5);
    assert_eq!(cell(&report, expiry, "codes_expired", Some("likely")), 2);
    assert_eq!(cell(&report, batch_day, "batches_published", None), batches);
    let chart = node.call("GET", &chart_path, &ada, None).await;
    assert!(
        String::from_utf8(chart.body)
            .unwrap()
            .contains("likely: 2</title>")
    );
    node.stop().await;

    // Counters go `stats_days` after their day.
    config.authority.stats_days = 3;
    let node = TestNode::start_with(config, clock.clone()).await;
    node.node.purge().unwrap();
    let ada = node.login_as("ada", &ada_password).await;
    let report = node.call("GET", &range, &ada, None).await.json();
    assert_eq!(cell(&report, day0, "codes_issued", Some("confirmed")), 6);
    clock.set(expiry.plus(1 + 3).start().plus_seconds(120));
    node.node.purge().unwrap();
    let ada = node.login_as("ada", &ada_password).await;
    let report = node.call("GET", &range, &ada, None).await.json();
    assert_eq!(cell(&report, day0, "codes_issued", Some("confirmed")), 0);
    assert_eq!(cell(&report, expiry, "codes_expired", Some("likely")), 0);
    node.stop().await;
}

/// The clock's day.
fn clock_day(clock: &ManualClock) -> DayNumber {
    UnixTime(clock.now_secs()).day()
}
