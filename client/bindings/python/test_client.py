"""The client through its Python bindings, against a real `ephemera-node serve` on
loopback (started by harness.Node). Run by run.sh, which builds the node and the library
and generates the bindings; prints "N passed, N failed".

Each test says which part of the phone library's contract it shows: nothing lost on a
kill, the clock contract, forgetting, the complete API, faithful contact time.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import ephemera as e
from example_app import AppDriver, http, meet
from harness import Node, node_binary

HERE = os.path.dirname(os.path.abspath(__file__))
DAY = 86_400


def pet_config(node, scan_period=60):
    config = e.default_config(e.FfiScheme.PET)
    config.trusted_node_keys = [node.authority["batch_public_key"]]
    config.decoy_rate_per_day = 0.0
    config.scan_period_seconds = scan_period
    return config


def expect_error(kind, call, what):
    """Runs `call`, which must raise the typed error `kind`; returns it."""
    try:
        call()
    except kind as err:
        return err
    raise AssertionError(what)


def drain_events(phone):
    """Every event, acknowledged."""
    events = []
    while (record := phone.poll_event()) is not None:
        events.append(record.event)
        phone.acknowledge_event(record.id)
    return events


def upload(node, phone, code, onset=None, revision=False):
    """Reports (or revises) through the example driver; returns the events seen."""
    driver = AppDriver(phone, node.url)
    now = int(time.time())
    if revision:
        phone.start_revision(now, code)
    else:
        phone.start_report(now, code, onset, None)
    seen = []
    deadline = time.time() + 30
    while time.time() < deadline:
        now = int(time.time())
        driver.timers(now)  # the upload follows the verify's answer by 1-3 s
        for record in driver.pump(now):
            seen.append(record.event)
            phone.acknowledge_event(record.id)
        if any(isinstance(x, (e.FfiEvent.REPORT_UPLOADED, e.FfiEvent.REPORT_FAILED)) for x in seen):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"no outcome: {seen}")


def sync_until_exposed(node, phone, deadline_s=30):
    driver = AppDriver(phone, node.url)
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        now = int(time.time())
        phone.start_sync(now)
        for record in driver.pump(now):
            phone.acknowledge_event(record.id)
            if isinstance(record.event, e.FfiEvent.EXPOSURE_FOUND):
                return record.event.exposure
        time.sleep(0.5)
    return None


# --- The example app, unchanged -------------------------------------------------------


def test_example_app_runs_against_a_real_node(node):
    with tempfile.TemporaryDirectory() as data:
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "example_app.py"), "--node", node.url,
             "--code", node.issue_code(), "--data-dir", data],
            capture_output=True, text=True, timeout=180, env=os.environ,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "alice: report uploaded" in out.stdout, out.stdout
        assert "high risk: True" in out.stdout, out.stdout
        print("   " + out.stdout.strip().replace("\n", "\n   "))


def test_mobile_md_quotes_the_example_driver(node):
    """docs/MOBILE.md shows the example's I/O loop; the two must not drift apart."""
    source = open(os.path.join(HERE, "example_app.py")).read()
    start = source.index("class AppDriver:")
    driver = source[start:source.index("\ndef meet(", start)].strip()
    doc = open(os.path.join(HERE, "..", "..", "..", "docs", "MOBILE.md")).read()
    assert driver in doc, "docs/MOBILE.md no longer quotes example_app.py's AppDriver"


# --- Nothing acknowledged or heard is lost --------------------------------------------


def run_child(step, state_path, kill_at=None):
    args = [sys.executable, os.path.join(HERE, "child_phone.py"), step, state_path]
    if kill_at:
        args.append(kill_at)
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ)
    if kill_at:
        assert out.returncode == -9, f"{step} {kill_at}: not killed ({out.returncode}) {out.stderr}"
        return None
    assert out.returncode == 0, f"{step}: {out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kill_and_restart_at_each_step_loses_nothing_and_stores_nothing_twice(node):
    """A phone process SIGKILLed in the middle of meeting, reporting and syncing, then
    started again on its folder, ends as if it had never been killed."""
    # (kill during the meeting, during the report, during the sync)
    cases = [
        ("scan:9", "started", "response:batches"),
        ("scan:0", "handled:verify", "response:batch"),
        ("scan:14", "response:uploads", "exposure-polled"),
        ("scan:19", "handled:uploads", "handled:batch"),
        ("scan:5", None, None),
    ]
    stored_before = node.metric("ephemera_stored_uploads") or 0
    with tempfile.TemporaryDirectory() as work:
        for i, (meet_kill, report_kill, sync_kill) in enumerate(cases):
            state = {
                "node": node.url,
                "batch_key": node.authority["batch_public_key"],
                "alice": os.path.join(work, f"alice{i}"),
                "bob": os.path.join(work, f"bob{i}"),
                # Two whole intervals, so every window of the contact counts (a window
                # under 300 weighted seconds would not, kill or no kill).
                "t0": (int(time.time()) // 600) * 600 - 3000 + 5,
                "code": node.issue_code(),
                "log": os.path.join(work, f"log{i}"),
                "marker": os.path.join(work, f"marker{i}"),
            }
            path = os.path.join(work, f"state{i}.json")
            with open(path, "w") as f:
                json.dump(state, f)
            run_child("meet", path, meet_kill)
            state["meet_from"] = int(meet_kill.split(":")[1]) + 1
            with open(path, "w") as f:
                json.dump(state, f)
            run_child("meet", path)
            if report_kill:
                run_child("report", path, report_kill)
            outcome = run_child("report", path)
            assert outcome == {"uploaded": True}, (i, outcome)
            if sync_kill:
                run_child("sync", path, sync_kill)
            synced = run_child("sync", path)
            # The contact: 20 one-minute scans, killed in the middle; credited 19-20 min.
            assert synced["exposures"] and 19 <= synced["exposures"][0] <= 20, (i, synced)
            assert synced["event"], (i, synced)
            assert synced["unacknowledged"] == 0, (i, synced)
            uploads = [json.loads(l) for l in open(state["log"]) if '"/v1/uploads"' in l]
            # Resent after a kill only as the same upload: sealed afresh at every send, so
            # the bytes differ and a proxy cannot link a retry, but of one length, and the
            # node stores it once (checked below).
            assert len({len(u["body"]) for u in uploads}) == 1, (i, len(uploads))
            print(f"   case {i}: killed at {meet_kill}, {report_kill}, {sync_kill}: "
                  f"exposure {synced['exposures'][0]} min, upload sent {len(uploads)}x")
    # Each report is stored once, however often it was sent.
    stored = node.metric("ephemera_stored_uploads")
    assert stored == stored_before + len(cases), (stored_before, stored)


def test_a_kill_after_the_authority_answered_spends_the_code_and_says_so(node):
    """The one step the phone cannot make safe alone: the node consumes the code at
    /v1/verify, and the certificate was in the answer the kill lost. The phone retries,
    the node answers invalid-code, and the app gets a typed, final failure."""
    with tempfile.TemporaryDirectory() as work:
        state = {
            "node": node.url, "batch_key": node.authority["batch_public_key"],
            "alice": os.path.join(work, "alice"), "bob": os.path.join(work, "bob"),
            "t0": (int(time.time()) // 600) * 600 - 3000 + 5, "code": node.issue_code(),
            "log": os.path.join(work, "log"), "marker": os.path.join(work, "marker"),
        }
        path = os.path.join(work, "state.json")
        with open(path, "w") as f:
            json.dump(state, f)
        run_child("meet", path)
        run_child("report", path, "response:verify")
        outcome = run_child("report", path)
        assert outcome["uploaded"] is False, outcome
        assert outcome["reason"].endswith("CODE_REFUSED"), outcome
        assert outcome["node_code"] == "invalid-code", outcome


def test_a_code_whose_first_upload_failed_still_uploads_after_a_restart(node):
    with tempfile.TemporaryDirectory() as data:
        config = pet_config(node)
        alice = e.EphemeraPhone(config, os.path.join(data, "alice"))
        bob = e.EphemeraPhone(config, None)
        meet(alice, bob, int(time.time()) - 1800, 20)
        now = int(time.time())
        # The app syncs when it opens: that brings the node's sealing key.
        alice.start_sync(now)
        AppDriver(alice, node.url).pump(now)
        alice.start_report(now, node.issue_code(), None, None)
        # The verify goes through; the upload (1-3 s later) meets a dead network.
        verify = alice.poll_request()
        assert verify.path == "/v1/verify" and verify.content_type == "application/ephemera-sealed"
        status, body, _ = http(node.url, "POST", verify.path, verify.body, verify.content_type)
        alice.handle_response(now, verify.id, status, body)
        alice.handle_timeout(now + 3)
        up = alice.poll_request()
        assert up.path == "/v1/uploads"
        alice.handle_failure(now, up.id)
        events = [r.event for r in alice.unacknowledged_events()]
        assert isinstance(events[-1], e.FfiEvent.REPORT_RETRYING), events
        status = alice.status()
        assert status.report_pending and status.report_certified and status.last_error == "transport"
        alice.close()
        # The app is started again later: the upload goes out on its own.
        alice = e.EphemeraPhone(config, os.path.join(data, "alice"))
        driver = AppDriver(alice, node.url)
        uploaded = False
        for _ in range(100):
            now = int(time.time()) + 120  # past the first retry's backoff
            driver.timers(now)
            for record in driver.pump(now):
                uploaded |= isinstance(record.event, e.FfiEvent.REPORT_UPLOADED)
                alice.acknowledge_event(record.id)
            if uploaded:
                break
            time.sleep(0.1)
        assert uploaded
        assert not alice.status().report_pending and alice.status().can_revise


# --- The clock ---------------------------------------------------------------------


def test_clock_contract(node):
    config = pet_config(node)
    phone = e.EphemeraPhone(config, None)
    assert phone.poll_timeout() is None, "no time known yet"
    now = int(time.time())
    ad = phone.advertisement(now)
    assert phone.poll_timeout() is not None
    for past in (now - 3600, 0):
        err = expect_error(e.FfiError.ClockWentBack, lambda: phone.advertisement(past), "a past time was accepted")
        assert err.seconds == now - past
    assert phone.advertisement(now - 10).full == ad.full, "within tolerance: the same key"
    expect_error(e.FfiError.InvalidInput, lambda: phone.advertisement(-1), "a negative time was accepted")
    assert phone.status().clock_refusals == 2


def test_a_forward_jump_purges_nothing_until_the_node_confirms_it(node):
    config = pet_config(node)
    now = int(time.time())
    past = now - 20 * DAY
    results = {}
    for confirm in (False, True):
        alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, None)
        meet(alice, bob, past, 20)
        alice.close_all_encounters()
        assert alice.status().stored_encounters >= 2
        alice.handle_timeout(now)  # 20 days later, a timer fires
        assert alice.status().clock_jump_pending
        if confirm:
            # A sync: the node's Date header confirms the time.
            alice.start_sync(now)
            AppDriver(alice, node.url).pump(now)
            assert not alice.status().clock_jump_pending
        alice.handle_timeout(now + 1)
        results[confirm] = alice.status().stored_encounters
    assert results[False] >= 2, "unconfirmed: the contacts are kept"
    assert results[True] == 0, "confirmed by the node: purged"


# --- Forgetting, and the rest of the API --------------------------------------------


def folder_bytes(folder):
    data = b""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data += f.read()
    return data


def day_keys(folder):
    """The day keys in a store folder's `day-keys` file: {day: key bytes}."""
    data = open(os.path.join(folder, "day-keys"), "rb").read()
    slots = [data[i:i + 37] for i in range(0, len(data), 37)]
    return {int.from_bytes(s[1:5], "big"): s[5:] for s in slots if s[0] == 1}


def test_delete_all_data_erases_the_folder(node):
    with tempfile.TemporaryDirectory() as data:
        config = pet_config(node)
        folder = os.path.join(data, "bob")
        alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, folder)
        now = (int(time.time()) // 600) * 600 + 5  # five minutes within one interval
        heard = alice.advertisement(now).full
        for i in range(5):
            bob.handle_sighting(now + 60 * i, alice.advertisement(now + 60 * i).full, -60, None)
        assert bob.status().open_encounters == 1
        keys = day_keys(folder)
        assert keys and heard not in folder_bytes(folder), "sealed at rest"
        bob.delete_all_data()
        disk = folder_bytes(folder)
        assert not any(k in disk for k in keys.values()), "the keys are gone from the disk"
        status = bob.status()
        assert status.open_encounters == 0 and status.sync_cursor == 0
        bob.advertisement(now + 400)  # it goes on as a new phone


def test_forgetting_on_disk_after_retention(node):
    """What a phone heard on day 1 is sealed under day 1's key; 15 days later that key
    is gone from the folder, so no copy sled kept of those records can be read."""
    with tempfile.TemporaryDirectory() as data:
        config = e.default_config(e.FfiScheme.GAEN)
        config.decoy_rate_per_day = 0.0
        folder = os.path.join(data, "phone")
        phone, peer = e.EphemeraPhone(config, folder), e.EphemeraPhone(config, None)
        day1 = (int(time.time()) // DAY - 20) * DAY + 9 * 3600
        heard = peer.advertisement(day1).full[:16]
        for i in range(10):
            phone.handle_sighting(day1 + 120 * i, peer.advertisement(day1 + 120 * i).full, -60, None)
        phone.close_all_encounters()
        key1 = day_keys(folder)[day1 // DAY]
        assert heard not in folder_bytes(folder) and key1 in folder_bytes(folder)
        for d in range(1, 16):  # one day at a time: no unexplained jump
            phone.handle_timeout(day1 + d * DAY)
        disk = folder_bytes(folder)
        assert key1 not in disk and heard not in disk
        assert day1 // DAY not in day_keys(folder)
        assert phone.status().stored_encounters == 0


def test_one_phone_per_folder_and_typed_errors(node):
    with tempfile.TemporaryDirectory() as data:
        config = pet_config(node)
        phone = e.EphemeraPhone(config, data)
        expect_error(e.FfiError.FolderInUse, lambda: e.EphemeraPhone(config, data), "two phones on one folder")
        expect_error(e.FfiError.NoReport, lambda: phone.retry_report(int(time.time())), "retry without a report")
        expect_error(e.FfiError.NothingToReport, lambda: phone.start_report(int(time.time()), node.issue_code(), None, None), "a report with nothing in it")
        expect_error(e.FfiError.InvalidInput, lambda: phone.handle_sighting(int(time.time()), b"\x01" * 7, -60, None), "a foreign payload")
        phone.set_paused(True)
        assert not phone.status().tracing
        expect_error(e.FfiError.Paused, lambda: phone.advertisement(int(time.time())), "advertising while paused")
        phone.close()
        expect_error(e.FfiError.Closed, lambda: phone.status(), "a closed phone answered")
        again = e.EphemeraPhone(config, data)  # the folder is free again
        assert not again.status().tracing, "paused is kept"
        bad = e.default_config(e.FfiScheme.GAEN)
        expect_error(e.FfiError.Config, lambda: again.update_config(bad), "a phone changed its scheme")


def gaen_config(node):
    config = e.default_config(e.FfiScheme.GAEN)
    config.trusted_node_keys = [node.authority["batch_public_key"]]
    config.decoy_rate_per_day = 0.0
    config.scan_period_seconds = 60
    return config


def two_days_ago_noon():
    """A meeting time whose GAEN keys are publishable now (their day ended > 2 h ago)."""
    return (int(time.time()) // DAY - 2) * DAY + 12 * 3600


def test_revision_likely_then_confirmed_and_risk_parameters(node):
    config = gaen_config(node)
    alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, None)
    meet(alice, bob, two_days_ago_noon(), 30)
    events = upload(node, alice, node.issue_code("likely"))
    assert isinstance(events[-1], e.FfiEvent.REPORT_UPLOADED), events
    assert alice.status().can_revise
    # A `likely` report weighs 0 by default: bob finds no exposure that counts.
    assert sync_until_exposed(node, bob, deadline_s=5) is None
    # The test comes back positive: the report is revised to confirmed, and the node
    # publishes the keys again with the new type.
    events = upload(node, alice, node.issue_code("confirmed"), revision=True)
    assert isinstance(events[-1], e.FfiEvent.REPORT_UPLOADED), events
    exposure = sync_until_exposed(node, bob)
    assert exposure is not None and exposure.high_risk, exposure
    # New risk parameters from the authority, without a new app: the same exposure is
    # not high risk under a much higher daily threshold.
    stricter = gaen_config(node)
    stricter.minimum_daily_score = 1e9
    bob.update_config(stricter)
    assert not any(x.high_risk for x in bob.exposures(int(time.time())))


def test_gaen_export_import_from_the_real_node(node):
    config = gaen_config(node)
    pem = node.authority["export_public_key_pem"]
    der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
    stranger = e.EphemeraPhone(config, None)
    config.gaen_export_keys = [der]
    alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, None)
    meet(alice, bob, two_days_ago_noon(), 30)
    events = upload(node, alice, node.issue_code())
    assert isinstance(events[-1], e.FfiEvent.REPORT_UPLOADED), events
    deadline = time.time() + 30
    seen, new = set(), 0
    while new == 0 and time.time() < deadline:
        status, body, _ = http(node.url, "GET", "/v1/exports/index.txt")
        files = [l for l in body.decode().splitlines() if l] if status == 200 else []
        for name in files:
            if name in seen:
                continue
            seen.add(name)
            status, zip_bytes, _ = http(node.url, "GET", "/" + name.lstrip("/"))
            assert status == 200, (name, status)
            now = int(time.time())
            new += bob.handle_gaen_export(now, zip_bytes).new_windows
            expect_error(e.FfiError.Rejected, lambda: stranger.handle_gaen_export(now, zip_bytes), "an export accepted without a configured key")
        time.sleep(0.5)
    assert new >= 1, f"no match in {len(seen)} export files"
    found = [x for x in drain_events(bob) if isinstance(x, e.FfiEvent.EXPOSURE_FOUND)]
    assert found and sum(found[0].exposure.minutes_per_bucket) >= 27, found


# --- Faithful contact time ----------------------------------------------------------


def test_credited_duration_within_10_percent_for_scan_periods_1_to_5_minutes(node):
    """One positive person met five people for 20 minutes each; each of them scans at a
    different period. Every one is warned with 18-22 minutes."""
    config = pet_config(node, scan_period=60)
    alice = e.EphemeraPhone(config, None)
    periods = [60, 120, 180, 240, 300]
    bobs = {p: e.EphemeraPhone(pet_config(node, scan_period=p), None) for p in periods}
    # Each contact covers two whole 10-minute intervals (17 s after a boundary): what is
    # measured is the credited time, not the risk model's rule that a window under 300
    # weighted seconds (a few minutes of an interval) does not count.
    # All five on yesterday's morning (06:00-11:20 UTC): a contact across midnight would be
    # two exposures, one per day, and the first one found would hold only part of it.
    start = (int(time.time()) // 86_400) * 86_400 - 18 * 3600
    for k, period in enumerate(periods):
        bob = bobs[period]
        begin = start + k * 3600 + 17
        for t in range(begin, begin + 20 * 60):
            if (t - begin) % 60 == 0:  # alice scans every minute
                alice.handle_sighting(t, bob.advertisement(t).full, -60, None)
            if (t - begin) % period == 0:  # bob at his own period
                bob.handle_sighting(t, alice.advertisement(t).full, -60, None)
    events = upload(node, alice, node.issue_code())
    assert isinstance(events[-1], e.FfiEvent.REPORT_UPLOADED), events
    for period, bob in bobs.items():
        exposure = sync_until_exposed(node, bob)
        assert exposure is not None, period
        minutes = sum(exposure.seconds_per_bucket) / 60
        error = (minutes - 20) / 20
        print(f"   scan period {period:>3} s: credited {minutes:.1f} min of 20 ({error:+.0%})")
        assert abs(error) <= 0.10, (period, minutes)


# --- Key rollover -----------------------------------------------------------------------


def test_a_phone_follows_a_batch_key_rollover_announced_under_its_pinned_key(node):
    """The operator rotates the batch key (`keys rotate batch`, then `--finish`) on a node
    of its own; a phone that pinned the first key still finds the exposure published
    under the second, across a restart of the phone."""
    del node  # the rotation restarts its node: this test has one of its own
    rotating = Node(batch_period_seconds=1)
    try:
        pinned = rotating.authority["batch_public_key"]
        config = pet_config(rotating)
        with tempfile.TemporaryDirectory() as folder:
            alice = e.EphemeraPhone(config, None)
            bob = e.EphemeraPhone(config, os.path.join(folder, "bob"))
            meet(alice, bob, int(time.time()) - 3600, 20)
            # Overlap: batches keep the pinned key, every index page announces the next.
            rotating.restart(lambda: rotating.command("keys", "rotate", "batch"))
            assert rotating.authority["batch_public_key"] == pinned
            assert sync_until_exposed(rotating, bob, deadline_s=3) is None
            # The phone restarts on its folder in the overlap.
            del bob
            bob = e.EphemeraPhone(config, os.path.join(folder, "bob"))
            status, body, _ = http(rotating.url, "GET", "/v1/batches?after=0")
            assert status == 200 and len(json.loads(body)["key_rollovers"]) == 1, body
            # The switch: batches are signed by a key bob was never configured with.
            rotating.restart(lambda: rotating.command("keys", "rotate", "batch", "--finish"))
            assert rotating.authority["batch_public_key"] != pinned
            events = upload(rotating, alice, rotating.issue_code())
            assert isinstance(events[-1], e.FfiEvent.REPORT_UPLOADED), events
            exposure = sync_until_exposed(rotating, bob)
            assert exposure is not None and exposure.high_risk, exposure
            # A phone that trusts only an unrelated key follows nothing.
            stranger = e.default_config(e.FfiScheme.PET)
            stranger.trusted_node_keys = ["ab" * 32]
            stranger.decoy_rate_per_day = 0.0
            carol = e.EphemeraPhone(stranger, None)
            carol.start_sync(int(time.time()))
            # The node's signed head is refused before any batch (docs/PROTOCOL.md §6.2).
            try:
                seen = drain_after_pump(rotating, carol)
            except e.FfiError.Other as refused:
                assert refused.code == "head-rejected", refused
            else:
                raise AssertionError(f"an untrusted node's head was accepted: {seen}")
    finally:
        rotating.stop()


# --- Blind upload tokens ----------------------------------------------------------------


class UploadRelay:
    """A relay run by another party than the authority (docs/PROTOCOL.md §4.4, "a separate
    path"): it forwards sealed `POST /v1/uploads` bodies to the node byte for byte, so the
    node sees the relay's connection and not the phone's, and keeps what it saw: the
    content type and length of each body (all it can read: the body is sealed to the
    node)."""

    def __init__(self, node_url):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        relay = self
        self.seen = []

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                content_type = self.headers["Content-Type"]
                relay.seen.append((self.path, content_type, body))
                status, answer, _ = http(node_url, "POST", self.path, body, content_type)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass  # a relay keeps no log of who sent what

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def test_a_report_with_a_blind_token_over_http(node):
    """A node with `blind_token_keys = true` (docs/PROTOCOL.md §4.4): a phone configured with
    the federation and its authority fetches the token keys with its sync, redeems its code
    at `POST /v2/verify` (never `/v1/verify`), uploads after the configured delay through a
    relay of another party (the separate path: the app routes `/v1/uploads` there), and the
    phone it met finds the exposure."""
    del node  # key generation is slow in a debug build: this test has a node of its own
    tokens = Node(batch_period_seconds=1, settings={"EPHEMERA_AUTHORITY_BLIND_TOKEN_KEYS": "true"})
    try:
        # The node makes its keys on its own task; until then it serves an empty set.
        deadline = time.time() + 180
        while True:
            status, body, _ = http(tokens.url, "GET", "/v2/token-keys")
            if status == 200 and len(body) > 1024:
                break
            assert time.time() < deadline, "no token keys within 180 s"
            time.sleep(0.5)
        config = pet_config(tokens)
        config.trusted_authority_keys = [tokens.authority["authority_public_key"]]
        config.federation = "ephemera"
        config.upload_delay_max_seconds = 4  # tests only: the default is the next day
        alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, None)
        meet(alice, bob, int(time.time()) - 3600, 20)
        driver = AppDriver(alice, tokens.url)
        relay = UploadRelay(tokens.url)
        relayed = AppDriver(alice, relay.url)
        sent = []
        send = driver.send

        def recording(request):
            sent.append((time.time(), request.path))
            if request.path == "/v1/uploads":
                return relayed.send(request)
            return send(request)

        driver.send = recording
        now = int(time.time())
        alice.start_sync(now)  # the app opening
        driver.pump(now)
        alice.start_report(int(time.time()), tokens.issue_code(), None, None)
        seen = []
        deadline = time.time() + 30
        while not any(isinstance(x, (e.FfiEvent.REPORT_UPLOADED, e.FfiEvent.REPORT_FAILED)) for x in seen):
            assert time.time() < deadline, f"no outcome: {seen}"
            now = int(time.time())
            driver.timers(now)
            seen += [record.event for record in driver.pump(now)]
            time.sleep(0.2)
        assert isinstance(seen[-1], e.FfiEvent.REPORT_UPLOADED), seen
        paths = [path for _, path in sent]
        assert "/v2/token-keys" in paths and "/v2/verify" in paths, paths
        assert "/v1/verify" not in paths, paths
        assert paths.index("/v2/verify") < paths.index("/v1/uploads"), paths
        # The relay carried the upload and could read nothing of it: one sealed body of a
        # padded size, as every phone's upload (real or decoy) has.
        uploads = [seen for seen in relay.seen if seen[0] == "/v1/uploads"]
        assert len(uploads) == 1, relay.seen
        _, content_type, body = uploads[0]
        assert content_type == "application/ephemera-sealed", content_type
        inner = len(body) - 56  # key id, HPKE enc, AEAD tag
        assert inner >= 4096 and inner & (inner - 1) == 0, len(body)
        relay.stop()
        assert alice.status().can_revise
        exposure = sync_until_exposed(tokens, bob)
        assert exposure is not None and exposure.high_risk, exposure
    finally:
        tokens.stop()


# --- Sunset: the end of purpose ------------------------------------------------------


def sunset_fixture():
    """A committee (2 of 3) and index pages carrying its orders, made by the Rust test
    `the_python_fixture_is_current` (Python cannot sign): a valid order of 2026-01-01
    effective 30 days later, the same order altered after signing, and one with a single
    approval."""
    with open(os.path.join(HERE, "sunset_fixture.json")) as f:
        return json.load(f)


def sunset_config(fixture):
    config = e.default_config(e.FfiScheme.PET)
    config.decoy_rate_per_day = 0.0
    config.scan_period_seconds = 60
    config.sunset_committee_keys = fixture["committee_keys"]
    config.sunset_threshold = fixture["threshold"]
    return config


def sync_with_index(phone, now, index_body):
    """A sync round at `now` in which the node's index is `index_body` (what a node, a
    cache or anyone in between serves); the other requests find no network."""
    phone.start_sync(now)
    while (request := phone.poll_request()) is not None:
        if request.path.startswith("/v1/batches"):
            phone.handle_response(now, request.id, 200, index_body.encode())
        else:
            phone.handle_failure(now, request.id)


def assert_stopped(phone, now):
    """Every call that would broadcast, record, sync, report or match fails with Ended."""
    for what, call in [
        ("advertisement", lambda: phone.advertisement(now)),
        ("sighting", lambda: phone.handle_sighting(now, bytes(32), -60, None)),
        ("sync", lambda: phone.start_sync(now)),
        ("timer", lambda: phone.handle_timeout(now)),
        ("report", lambda: phone.start_report(now, "A" * 16, None, None)),
        ("retry", lambda: phone.retry_report(now)),
        ("exposures", lambda: phone.exposures(now)),
        ("pause", lambda: phone.set_paused(False)),
    ]:
        expect_error(e.FfiError.Ended, call, f"{what} on an ended phone")
    status = phone.status()
    assert status.ended and not status.tracing and status.ends_at is None, status
    assert status.stored_encounters == 0 and phone.poll_timeout() is None, status


def test_a_sunset_order_in_the_index_erases_and_stops_the_phone_at_its_time(node):
    """Forged and partial orders are ignored; a valid one is announced and kept across a
    restart; at its time the phone erases everything (no day key left on disk) and stops,
    and stays stopped after another restart."""
    del node  # an honest node refuses forged and partial orders: a hostile one serves them
    fixture = sunset_fixture()
    config = sunset_config(fixture)
    effective = fixture["effective_at"]
    with tempfile.TemporaryDirectory() as data:
        folder = os.path.join(data, "bob")
        alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, folder)
        now = fixture["issued_at"] + DAY + 5
        for i in range(11):
            bob.handle_sighting(now + 60 * i, alice.advertisement(now + 60 * i).full, -60, None)
        bob.close_all_encounters()
        met = bob.status().stored_encounters
        assert met > 0
        now += 3600
        for bad in ("index_with_forged", "index_with_partial"):
            sync_with_index(bob, now, fixture[bad])
            assert any(isinstance(x, e.FfiEvent.SUNSET_ORDER_REJECTED) for x in drain_events(bob)), bad
        status = bob.status()
        assert status.sunset_orders_rejected == 2 and status.ends_at is None, status
        assert status.stored_encounters == met, "a rejected order erased something"
        sync_with_index(bob, now, fixture["index_with_valid"])
        scheduled = [x for x in drain_events(bob) if isinstance(x, e.FfiEvent.SUNSET_SCHEDULED)]
        assert len(scheduled) == 1, scheduled
        assert scheduled[0].effective_at == effective and scheduled[0].reason == fixture["reason"]
        assert bob.status().ends_at == effective
        # The phone restarts and never syncs again: it still ends at the order's time.
        del bob
        bob = e.EphemeraPhone(config, folder)
        assert bob.status().ends_at == effective and bob.status().stored_encounters == met
        bob.advertisement(now + 600)
        keys = day_keys(folder)
        assert keys and all(k in folder_bytes(folder) for k in keys.values())
        expect_error(e.FfiError.Ended, lambda: bob.handle_timeout(effective), "not ended")
        ended = [x for x in drain_events(bob) if isinstance(x, e.FfiEvent.ENDED)]
        assert len(ended) == 1, ended
        assert ended[0].order_id == fixture["order_id"] and ended[0].at == effective, ended
        assert ended[0].reason == fixture["reason"]
        disk = folder_bytes(folder)
        assert not any(k in disk for k in keys.values()), "a day key is still on disk"
        assert_stopped(bob, effective + 60)
        bob.delete_all_data()  # the user's delete never brings an ended phone back
        assert_stopped(bob, effective + 120)
        del bob
        bob = e.EphemeraPhone(config, folder)
        assert_stopped(bob, effective + DAY)


def sunset_cli(work, *args):
    """`ephemera-node sunset <args>` in folder `work`, as a committee member runs it
    offline; returns its stdout."""
    out = subprocess.run([node_binary(), "sunset", *args], cwd=work, env=os.environ,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_real_nodes_sunset_order_reaches_the_phone_which_ends_at_its_time(node):
    """The committee's offline flow (`ephemera-node sunset keygen`, `draft`, two members
    `sign`, `combine`) makes an order; a node configured with the committee adopts it
    (`POST /v1/sunset`) and serves it in its index; a phone syncing through the example
    driver schedules it, and at its time erases everything and stops without another
    sync."""
    del node  # this node is configured with the committee
    with tempfile.TemporaryDirectory() as work:
        keys = [sunset_cli(work, "keygen", "--out", f"member{i}.key").strip() for i in range(3)]
        ending = Node(batch_period_seconds=1, settings={
            "EPHEMERA_SUNSET_KEYS": ",".join(keys), "EPHEMERA_SUNSET_THRESHOLD": "2"})
        try:
            committee = [arg for key in keys for arg in ("--key", key)]
            effective = int(time.time()) + 3600
            reason = "The epidemic is declared over (decree 2027/12)."
            sunset_cli(work, "draft", "--federation", "ephemera", *committee, "--threshold", "2",
                       "--effective", str(effective), "--reason", reason, "--out", "draft.sunset")
            draft = open(os.path.join(work, "draft.sunset"), "rb").read()
            for member in (0, 2):
                with open(os.path.join(work, f"copy{member}.sunset"), "wb") as f:
                    f.write(draft)
                sunset_cli(work, "sign", "--key", f"member{member}.key", f"copy{member}.sunset")
            sunset_cli(work, "combine", "copy0.sunset", "copy2.sunset", "--out", "order.sunset")
            verified = sunset_cli(work, "verify", "--federation", "ephemera", *committee,
                                  "--threshold", "2", "order.sunset")
            order_id = verified.strip().rsplit(" ", 1)[-1]
            order = open(os.path.join(work, "order.sunset"), "rb").read()
            status, answer, _ = http(ending.url, "POST", "/v1/sunset", order,
                                     "application/octet-stream")
            assert status == 200, answer
            config = pet_config(ending)
            config.sunset_committee_keys = keys
            config.sunset_threshold = 2
            folder = os.path.join(work, "bob")
            alice, bob = e.EphemeraPhone(config, None), e.EphemeraPhone(config, folder)
            meet(alice, bob, int(time.time()) - 3600, 20)
            bob.start_sync(int(time.time()))
            seen = drain_after_pump(ending, bob)
            scheduled = [x for x in seen if isinstance(x, e.FfiEvent.SUNSET_SCHEDULED)]
            assert len(scheduled) == 1, seen
            assert scheduled[0].effective_at == effective and scheduled[0].reason == reason
            assert bob.status().ends_at == effective and bob.status().stored_encounters > 0
            keys_on_disk = day_keys(folder)
            expect_error(e.FfiError.Ended, lambda: bob.handle_timeout(effective), "not ended")
            ended = [x for x in drain_events(bob) if isinstance(x, e.FfiEvent.ENDED)]
            assert len(ended) == 1 and ended[0].order_id == order_id, (ended, verified)
            disk = folder_bytes(folder)
            assert keys_on_disk and not any(k in disk for k in keys_on_disk.values())
            assert_stopped(bob, effective + 60)
        finally:
            ending.stop()


def test_the_end_of_life_stops_a_phone_that_never_hears_of_an_order(node):
    """With no order, the end of life fixed in the app ends the phone: its timers lead to
    it. A value that cannot be a date in seconds is a configuration error."""
    del node
    fixture = sunset_fixture()
    config = sunset_config(fixture)
    now = fixture["issued_at"] + 5
    config.end_of_life = now + 2 * DAY
    phone = e.EphemeraPhone(config, None)
    phone.advertisement(now)
    assert phone.status().ends_at == config.end_of_life
    while True:
        now = phone.poll_timeout()
        assert now <= config.end_of_life
        try:
            phone.handle_timeout(now)
        except e.FfiError.Ended:
            break
        while (request := phone.poll_request()) is not None:
            phone.handle_failure(now, request.id)
    assert now == config.end_of_life
    ended = [x for x in drain_events(phone) if isinstance(x, e.FfiEvent.ENDED)]
    assert len(ended) == 1 and ended[0].order_id is None, ended
    assert ended[0].reason == "end of life" and ended[0].at == config.end_of_life, ended
    assert_stopped(phone, now)
    for field, value in [("end_of_life", 1_700_000_000_000), ("end_of_life", 0),
                         ("sunset_threshold", 4), ("sunset_committee_keys", ["zz"])]:
        bad = sunset_config(fixture)
        setattr(bad, field, value)
        expect_error(e.FfiError.Config, lambda: e.EphemeraPhone(bad, None), f"{field}={value}")


def batch_tokens(node):
    """Every token record (16 bytes) in the batches a node publishes, decoys included
    (docs/PROTOCOL.md §6: a 74-byte frame head, a 56-byte body head, 24-byte keys, 20-byte
    tokens)."""
    status, body, _ = http(node.url, "GET", "/v1/batches")
    assert status == 200, status
    tokens = set()
    for entry in json.loads(body)["batches"]:
        status, batch, _ = http(node.url, "GET", "/v1/batches/" + entry["id"])
        assert status == 200, status
        head = 74
        keys = int.from_bytes(batch[head + 48:head + 52], "little")
        count = int.from_bytes(batch[head + 52:head + 56], "little")
        first = head + 56 + 24 * keys
        for i in range(count):
            record = batch[first + 20 * i:first + 20 * (i + 1)]
            tokens.add(record[4:])
    return tokens


def wait_until(what, check, deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def free_port():
    """A loopback TCP port nobody listens on now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_three_federated_nodes_and_their_phones_end_under_one_order_and_keep_nothing(node):
    """Issue 21, done when: nodes A–B–C federated, C offline when the order is handed to A,
    and D down through the order's time. After the order's time every node answers 410 and
    every receipt verifies; D, back after it, gets the order from its erased peer and erases
    at once; every phone (one per node) erased and stopped; no data folder holds a published
    token, the code or an account name."""
    del node
    with tempfile.TemporaryDirectory() as work:
        keys = [sunset_cli(work, "keygen", "--out", f"member{i}.key").strip() for i in range(3)]
        settings = {"EPHEMERA_SUNSET_KEYS": ",".join(keys), "EPHEMERA_SUNSET_THRESHOLD": "2",
                    "EPHEMERA_FEDERATION_PUBLISH_DELAY_MS": "0",
                    "EPHEMERA_FEDERATION_SYNC_INTERVAL_SECONDS": "2"}
        # Fixed federation ports, as in production: an erased node passes its order on at
        # the address its peers know.
        a = Node(batch_period_seconds=1, settings={
            **settings, "EPHEMERA_FEDERATION_LISTEN": f"127.0.0.1:{free_port()}"})
        nodes = [a]
        try:
            trust_a = {"EPHEMERA_AUTHORITY_TRUSTED_AUTHORITIES": a.authority["authority_public_key"]}
            b = Node(batch_period_seconds=1, settings={
                **settings, **trust_a, "EPHEMERA_FEDERATION_BOOTSTRAP_PEERS": a.peer_addr,
                "EPHEMERA_FEDERATION_LISTEN": f"127.0.0.1:{free_port()}"})
            nodes.append(b)
            d = Node(batch_period_seconds=1, settings={
                **settings, **trust_a, "EPHEMERA_FEDERATION_BOOTSTRAP_PEERS": b.peer_addr})
            nodes.append(d)
            # Alice reports at A; Bob, who met her, learns it from B.
            phones = {}
            folders = {}

            def phone_of(name, home):
                config = pet_config(home)
                config.sunset_committee_keys = keys
                config.sunset_threshold = 2
                folders[name] = os.path.join(work, name)
                phones[name] = e.EphemeraPhone(config, folders[name])

            phone_of("alice", a)
            phone_of("bob", b)
            meet(phones["alice"], phones["bob"], int(time.time()) - 7200, 20)
            code = a.issue_code()
            seen = upload(a, phones["alice"], code)
            assert any(isinstance(x, e.FfiEvent.REPORT_UPLOADED) for x in seen), seen
            assert sync_until_exposed(b, phones["bob"], 60) is not None, "B relayed the report"
            wait_until("D publishes the relayed report", lambda: batch_tokens(d))
            tokens = batch_tokens(a) | batch_tokens(b) | batch_tokens(d)
            assert tokens, "the batches hold tokens to look for"
            d._halt()  # D is down from before the order until after its time

            # The committee's order, effective in 25 s, handed to A only.
            committee = [arg for key in keys for arg in ("--key", key)]
            effective = int(time.time()) + 25
            sunset_cli(work, "draft", "--federation", "ephemera", *committee, "--threshold", "2",
                       "--effective", str(effective), "--reason", "The epidemic is over.",
                       "--out", "order.sunset")
            sunset_cli(work, "sign", "--key", "member0.key", "order.sunset")
            sunset_cli(work, "sign", "--key", "member1.key", "order.sunset")
            order = open(os.path.join(work, "order.sunset"), "rb").read()
            status, answer, _ = http(a.url, "POST", "/v1/sunset", order, "application/octet-stream")
            assert status == 200, answer
            wait_until("B holds the order",
                       lambda: http(b.url, "GET", "/v1/sunset")[0:2] == (200, order))
            # C was offline: it starts now, behind B, and catches up reports and the order.
            c = Node(batch_period_seconds=1, settings={
                **settings, **trust_a, "EPHEMERA_FEDERATION_BOOTSTRAP_PEERS": b.peer_addr})
            nodes.append(c)
            wait_until("C holds the order",
                       lambda: http(c.url, "GET", "/v1/sunset")[0:2] == (200, order))
            phone_of("carol", c)
            for name, home in (("alice", a), ("bob", b), ("carol", c)):
                phone = phones[name]
                phone.start_sync(int(time.time()))
                scheduled = [x for x in drain_after_pump(home, phone)
                             if isinstance(x, e.FfiEvent.SUNSET_SCHEDULED)]
                assert phone.status().ends_at == effective, (name, scheduled, phone.status())
            batch_keys = [n.authority["batch_public_key"] for n in nodes]
            names = [n.credentials[0] for n in nodes]

            # Its time: every node erases and serves only the order and its receipt; D,
            # back only now, hears the order from its erased peer B and erases at once.
            for n in (a, b, c):
                n.wait_for_sunset(60 + max(0, effective - int(time.time())))
            d._start(sign_in=False)
            receipts = []
            for i, n in enumerate(nodes):
                n.wait_for_sunset(60)
                status, _, _ = http(n.url, "POST", "/v1/uploads", b"x", "application/octet-stream")
                assert status == 410, status
                status, receipt, _ = http(n.url, "GET", "/v1/sunset/receipt")
                assert status == 200, status
                path = os.path.join(work, f"node{i}.receipt")
                with open(path, "wb") as f:
                    f.write(receipt)
                receipts.append(path)
            verdict = sunset_cli(work, "verify-receipts", "--order", "order.sunset",
                                 *[arg for key in batch_keys for arg in ("--node", key)],
                                 *receipts)
            assert "all 4 receipts verify" in verdict, verdict
            for name, phone in phones.items():
                expect_error(e.FfiError.Ended, lambda: phone.handle_timeout(effective),
                             f"{name} not ended")
                assert_stopped(phone, effective + 60)
            for n in nodes:
                disk = folder_bytes(n.data_dir)
                assert not [t for t in tokens if t in disk], "a published token survived"
                assert code.encode() not in disk, "the code survived"
                for name in names:
                    assert name.encode() not in disk, "an account name survived"
            for name, folder in folders.items():
                assert not [t for t in tokens if t in folder_bytes(folder)], name
        finally:
            for n in nodes:
                n.stop()


# --- Venue check-in --------------------------------------------------------------------


def venue_fixture():
    """A venue's QR text and the traces an authority published for a case there, made by
    the Rust test `the_python_venue_fixture_is_current` (a phone never makes traces): the
    case's traces (20 to 40 minutes after `arrival`), traces of the same venue 3 hours
    later, and traces of another venue at the case's time."""
    with open(os.path.join(HERE, "venue_fixture.json")) as f:
        fixture = json.load(f)
    for key in ("traces_of_the_case", "traces_later_that_day", "traces_of_another_venue"):
        fixture[key] = [bytes.fromhex(t) for t in fixture[key]]
    return fixture


def test_venue_check_in_out_and_a_warning_without_the_venue(node):
    """Check in from the QR text, check out, match published traces: one warning with the
    day, the hour and the authority's message, raised once; the folder holds no venue
    name, address or QR text after check-out; bad input gets typed errors."""
    del node  # traces the app holds itself; the phone's own download is tested below
    fixture = venue_fixture()
    config = e.default_config(e.FfiScheme.PET)
    config.decoy_rate_per_day = 0.0
    arrival = fixture["arrival"]
    with tempfile.TemporaryDirectory() as data:
        folder = os.path.join(data, "carol")
        phone = e.EphemeraPhone(config, folder)
        for bad in ("", "https://example.org/menu", "ephemera-venue:AAAA", fixture["qr_text"] + "="):
            err = expect_error(e.FfiError.BadVenueCode, lambda: phone.check_in(arrival, bad), bad)
            assert err.code == "venue-code-invalid", err
        expect_error(e.FfiError.NotCheckedIn, lambda: phone.check_out(arrival), "no check-in")
        status = phone.check_in(arrival, fixture["qr_text"])
        assert status.venue_name == fixture["venue_name"], status
        assert status.arrival == arrival
        assert status.automatic_check_out == arrival + config.venue_max_stay_seconds
        assert phone.open_check_in() == status
        expect_error(e.FfiError.AlreadyCheckedIn,
                     lambda: phone.check_in(arrival + 60, fixture["qr_text"]), "twice")
        assert phone.check_out(arrival + 45 * 60) == 1  # 12:10 to 12:55: one hour
        assert phone.open_check_in() is None
        disk = folder_bytes(folder)
        for what in ("venue_name", "venue_address", "qr_text"):
            assert fixture[what].encode() not in disk, f"the {what} is on disk after check-out"
        assert fixture["qr_text"][20:60].encode() not in disk

        later = arrival + DAY
        nothing = (fixture["traces_later_that_day"] + fixture["traces_of_another_venue"]
                   + [b"\x01" * 40])
        summary = phone.match_venue_traces(later, nothing)
        assert summary.traces == len(nothing) and summary.undecodable == 1, summary
        assert summary.new_warnings == 0 and phone.venue_warnings() == [], summary

        summary = phone.match_venue_traces(later, fixture["traces_of_the_case"] + nothing)
        assert summary.new_warnings == 1 and summary.attempts >= 1, summary
        warnings = [x.warning for x in drain_events(phone) if isinstance(x, e.FfiEvent.VENUE_WARNING)]
        assert len(warnings) == 1, warnings
        warning = warnings[0]
        assert warning.day == arrival // DAY
        assert warning.hour_starts == [fixture["case_hour_start"]]
        assert warning.message == fixture["message"]
        assert phone.venue_warnings() == [warning]
        # The next download holds the same traces: nothing new.
        again = phone.match_venue_traces(later + 3600, fixture["traces_of_the_case"])
        assert again.new_warnings == 0 and not [
            x for x in drain_events(phone) if isinstance(x, e.FfiEvent.VENUE_WARNING)]
        assert fixture["message"].encode() not in folder_bytes(folder), "sealed at rest"


def test_a_forgotten_check_in_ends_by_itself(node):
    """The phone checks out at the longest stay (configurable) and says so."""
    del node
    fixture = venue_fixture()
    config = e.default_config(e.FfiScheme.PET)
    config.decoy_rate_per_day = 0.0
    config.venue_max_stay_seconds = 2 * 3600
    phone = e.EphemeraPhone(config, None)
    arrival = fixture["arrival"]
    phone.check_in(arrival, fixture["qr_text"])
    assert phone.poll_timeout() <= arrival + 2 * 3600
    phone.handle_timeout(arrival + 2 * 3600)
    assert phone.open_check_in() is None
    assert any(isinstance(x, e.FfiEvent.VENUE_CHECKED_OUT) for x in drain_events(phone))
    expect_error(e.FfiError.NotCheckedIn, lambda: phone.check_out(arrival + 3 * 3600), "gone")
    summary = phone.match_venue_traces(arrival + DAY, fixture["traces_of_the_case"])
    assert summary.new_warnings == 1, summary
    config.venue_max_stay_seconds = 24 * 3600
    expect_error(e.FfiError.Config, lambda: e.EphemeraPhone(config, None), "a visit is at most 23 h")


def venue_at(node, name):
    """A venue made at `node` by its case worker (`POST /v1/venues`), valid from yesterday:
    its QR text and its trace code."""
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - DAY))
    request = json.dumps({"description": name, "valid_from": yesterday}).encode()
    status, answer, _ = http(node.url, "POST", "/v1/venues", request, "application/json",
                             {"Authorization": "Bearer " + node.token})
    assert status == 201, (status, answer)
    created = json.loads(answer)
    return created["qr_text"], created["trace_code"]


def trace_venue(node, trace_code, case_from, case_until, message):
    """The case worker traces the venue at `node` (`POST /v1/venue-traces`): the release."""
    request = json.dumps({"trace_code": trace_code, "case_from": case_from,
                          "case_until": case_until, "message": message}).encode()
    status, answer, _ = http(node.url, "POST", "/v1/venue-traces", request, "application/json",
                             {"Authorization": "Bearer " + node.token})
    assert status == 201, (status, answer)
    return json.loads(answer)


class RecordingDriver(AppDriver):
    """The example driver, noting the path of every request it sends."""

    def __init__(self, phone, base_url):
        super().__init__(phone, base_url)
        self.paths = []

    def send(self, request):
        self.paths.append(request.path)
        return super().send(request)


def venue_visitor(node, folder, qr_text, arrival, authority_key):
    """A phone pinning `authority_key` that checked in at `qr_text` for an hour from
    `arrival`."""
    config = pet_config(node)
    config.trusted_authority_keys = [authority_key]
    phone = e.EphemeraPhone(config, folder)
    phone.check_in(arrival, qr_text)
    assert phone.check_out(arrival + 3600) >= 1
    return phone


def test_a_phone_downloads_a_real_nodes_venue_release_and_only_its_visitor_is_warned(node):
    """A venue made at a real node, a visitor checked in there and a stranger elsewhere; a
    case worker traces the venue at the node; each phone's own sync downloads the signed
    release and checks it against its pinned authority key: the visitor is warned, once;
    the stranger is not; a phone that pins another key refuses the release and is not
    warned either. The next sync fetches nothing again."""
    qr_text, trace_code = venue_at(node, "Café des Alpes")
    elsewhere, _ = venue_at(node, "Boulangerie du Lac")
    authority = node.authority["authority_public_key"]
    now = int(time.time())
    arrival = now - 3 * 3600
    with tempfile.TemporaryDirectory() as data:
        visitor = venue_visitor(node, os.path.join(data, "visitor"), qr_text, arrival, authority)
        stranger = venue_visitor(node, os.path.join(data, "stranger"), elsewhere, arrival,
                                 authority)
        # Pins a key that is not the authority's (the node's batch key).
        other_pin = venue_visitor(node, os.path.join(data, "other"), qr_text, arrival,
                                  node.authority["batch_public_key"])
        message = "A case was at a place you visited. Get tested."
        release = trace_venue(node, trace_code, arrival + 600, arrival + 1800, message)
        path = f"/v1/venue-releases/{release['release']}"

        def sync(phone):
            driver = RecordingDriver(phone, node.url)
            now = int(time.time())
            phone.start_sync(now)
            events = [record.event for record in driver.pump(now)]
            return driver.paths, events + drain_events(phone)

        paths, events = sync(visitor)
        assert path in paths, paths
        warnings = [x.warning for x in events if isinstance(x, e.FfiEvent.VENUE_WARNING)]
        assert len(warnings) == 1, events
        assert warnings[0].message == message
        assert warnings[0].day in (arrival // DAY, (arrival + 1800) // DAY), warnings
        assert visitor.venue_warnings() == warnings
        assert visitor.venue_release_cursor() == release["sequence"]
        assert not [x for x in events if isinstance(x, e.FfiEvent.VENUE_RELEASE_REJECTED)], events

        paths, events = sync(visitor)
        assert path not in paths, "fetched again"
        assert f"/v1/venue-releases?after={release['sequence']}" in paths, paths
        assert not [x for x in events if isinstance(x, e.FfiEvent.VENUE_WARNING)], events

        paths, events = sync(stranger)
        assert path in paths, paths
        assert not [x for x in events if isinstance(x, e.FfiEvent.VENUE_WARNING)], events
        assert stranger.venue_warnings() == []
        assert stranger.venue_release_cursor() == release["sequence"]

        _, events = sync(other_pin)
        assert not [x for x in events if isinstance(x, e.FfiEvent.VENUE_WARNING)], events
        refused = [x for x in events if isinstance(x, e.FfiEvent.VENUE_RELEASE_REJECTED)]
        assert [(x.code, x.retried) for x in refused] == [("venue-release-untrusted", False)], events
        assert other_pin.venue_warnings() == []


def test_a_release_made_at_one_node_warns_a_phone_that_syncs_from_its_federated_peer(node):
    """Issue 20 across nodes: a venue made at A, a case worker traces it at A; B, federated
    with A and trusting A's authority, gets the release over `/ephemera/venue-releases/1`
    and lists it; a visitor whose phone syncs from B (pinning A's authority key) is warned
    from B's bytes, a phone that was elsewhere is not. Neither node's data folder nor its
    logs (at `debug`) hold the venues' names, their QR payloads or entry codes, the trace
    code, the case's times or the message."""
    del node
    settings = {"EPHEMERA_FEDERATION_PUBLISH_DELAY_MS": "0",
                "EPHEMERA_FEDERATION_SYNC_INTERVAL_SECONDS": "2",
                "EPHEMERA_LOG_FILTER": "debug"}
    a = Node(batch_period_seconds=1, settings=settings)
    nodes = [a]
    try:
        authority = a.authority["authority_public_key"]
        b = Node(batch_period_seconds=1, settings={
            **settings, "EPHEMERA_AUTHORITY_TRUSTED_AUTHORITIES": authority,
            "EPHEMERA_FEDERATION_BOOTSTRAP_PEERS": a.peer_addr})
        nodes.append(b)
        qr_text, trace_code = venue_at(a, "Café de la Gare")
        elsewhere, _ = venue_at(a, "Cinéma du Port")
        arrival = int(time.time()) - 3 * 3600
        with tempfile.TemporaryDirectory() as data:
            visitor = venue_visitor(b, os.path.join(data, "visitor"), qr_text, arrival, authority)
            stranger = venue_visitor(b, os.path.join(data, "stranger"), elsewhere, arrival,
                                     authority)
            message = "A case was at a place you visited. Get tested."
            release = trace_venue(a, trace_code, arrival + 600, arrival + 1800, message)

            def listed_at_b():
                status, body, _ = http(b.url, "GET", "/v1/venue-releases?after=0")
                return status == 200 and any(
                    r["id"] == release["release"] for r in json.loads(body)["releases"])

            wait_until("B lists the release made at A", listed_at_b)
            for phone, warned in ((visitor, True), (stranger, False)):
                driver = RecordingDriver(phone, b.url)
                now = int(time.time())
                phone.start_sync(now)
                events = [record.event for record in driver.pump(now)] + drain_events(phone)
                assert f"/v1/venue-releases/{release['release']}" in driver.paths, driver.paths
                warnings = [x.warning for x in events if isinstance(x, e.FfiEvent.VENUE_WARNING)]
                assert [w.message for w in warnings] == ([message] if warned else []), events
                assert not [x for x in events
                            if isinstance(x, e.FfiEvent.VENUE_RELEASE_REJECTED)], events
        for n in nodes:
            n._halt()
        assert b"venue releases taken from a peer" in open(b.stderr_path, "rb").read() + \
            open(b.stdout_path, "rb").read(), "B's logs do not cover the release's arrival"
        assert_no_venue_secrets(nodes, {
            "venue name": "Café de la Gare", "other venue's name": "Cinéma du Port",
            "QR text": qr_text, "other QR text": elsewhere, "trace code": trace_code,
            "message": message, "case arrival": str(arrival + 600),
            "case departure": str(arrival + 1800)})
    finally:
        for n in nodes:
            n.stop()


def assert_no_venue_secrets(nodes, secrets):
    """No node's data folder, stdout or stderr holds any of `secrets` (texts), nor the raw
    bytes of a QR payload's entry code or a trace code, in clear."""
    needles = {what: text.encode() for what, text in secrets.items()}
    for what, text in secrets.items():
        for prefix in ("ephemera-venue:", "ephemera-trace:"):
            if text.startswith(prefix):
                payload = text[len(prefix):]
                raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
                needles[what + " (payload)"] = payload[:40].encode()
                needles[what + " (bytes)"] = raw[8:40]
                needles[what + " (hex)"] = raw[8:40].hex().encode()
    for n in nodes:
        kept = folder_bytes(n.data_dir)
        logs = open(n.stdout_path, "rb").read() + open(n.stderr_path, "rb").read()
        assert logs, "the node logged nothing: the scan would prove nothing"
        for what, needle in needles.items():
            assert needle not in kept, f"{what} in a node's data folder"
            assert needle not in logs, f"{what} in a node's logs"


def drain_after_pump(node, phone):
    """One round of the example driver; every event, acknowledged."""
    seen = [record.event for record in AppDriver(phone, node.url).pump(int(time.time()))]
    return seen + drain_events(phone)


def main():
    node = Node(batch_period_seconds=1)
    passed = failed = 0
    try:
        tests = [(k, v) for k, v in globals().items() if k.startswith("test_")]
        only = sys.argv[1:]
        for name, test in tests:
            if only and not any(o in name for o in only):
                continue
            started = time.time()
            try:
                test(node)
                passed += 1
                print(f"ok   {name} ({time.time() - started:.1f} s)")
            except Exception:  # noqa: BLE001 - report every failure, run the rest
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
    finally:
        node.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
