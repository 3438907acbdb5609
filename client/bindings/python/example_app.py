"""Example app driver: two phones meet, one tests positive and uploads, the other syncs
and is warned, against a real Ephemera node over HTTP.

This is the loop an app wraps around the library (Kotlin and Swift call the same
functions, generated from the same Rust): it moves bytes and fires timers, and makes no
protocol decision. `docs/MOBILE.md` quotes it; CI runs it unchanged against
`ephemera-node serve` (see `.ci/extra/client-python.sh`).

    python3 example_app.py --node http://127.0.0.1:8080 --code XXXX-XXXX-XXXX-XXXX \
        --data-dir /tmp/ephemera-example

The code comes from the node's case-worker API (`POST /v1/codes`), as docs/MOBILE.md shows.
Bluetooth is simulated: each phone's advertisement is handed to the other as a sighting.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime

import ephemera as e


def http(base, method, path, body=None, content_type=None, headers=None, timeout=30):
    """One HTTP request; returns (status, body bytes, the Date header as unix seconds)."""
    request = urllib.request.Request(base + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), _date(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), _date(error.headers)


def _date(headers):
    value = headers.get("Date") if headers else None
    return int(parsedate_to_datetime(value).timestamp()) if value else None


class AppDriver:
    """The I/O loop around one phone: send what it asks, hand back the answers."""

    def __init__(self, phone, base_url):
        self.phone = phone
        self.base_url = base_url

    def pump(self, now):
        """Sends every queued request, hands back each answer (or the failure), and
        returns the events raised, each with the id to acknowledge it by."""
        while (request := self.phone.poll_request()) is not None:
            self.exchange(now, request)
        events = []
        while (record := self.phone.poll_event()) is not None:
            events.append(record)
        return events

    def exchange(self, now, request):
        """One request to the node and its answer back to the phone."""
        try:
            status, body, date = self.send(request)
        except OSError:
            # No network: the phone retries reports with backoff, syncs next round.
            self.phone.handle_failure(now, request.id)
            return
        try:
            self.phone.handle_response(now, request.id, status, body)
        except e.FfiError.Rejected:
            pass  # a bad batch: already a BatchRejected event; the next sync retries
        if date is not None:
            # The node's clock confirms a forward jump of the phone's (for retention).
            self.phone.confirm_time(now, date)

    def send(self, request):
        """The HTTP request (an app uses its own HTTP stack)."""
        body = request.body if request.method == "POST" else None
        return http(self.base_url, request.method, request.path, body, request.content_type)

    def timers(self, now):
        """Fires the phone's timer if it is due (an app arms an OS timer instead)."""
        due = self.phone.poll_timeout()
        if due is not None and due <= now:
            self.phone.handle_timeout(now)


def meet(a, b, start, minutes, scan_period=60):
    """Simulated Bluetooth: both phones scan every `scan_period` s and hear each other."""
    for step in range(0, minutes * 60, scan_period):
        now = start + step
        for hearer, speaker in ((a, b), (b, a)):
            ad = speaker.advertisement(now)
            hearer.handle_sighting(now, ad.full, -60, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the node's base URL")
    parser.add_argument("--code", required=True, help="an upload code from a case worker")
    parser.add_argument("--data-dir", required=True, help="a folder for the two phones")
    parser.add_argument("--deadline", type=int, default=120, help="seconds to wait for the warning")
    args = parser.parse_args()

    # The node's batch key (not its authority key) is what batches are checked against.
    status, body, _ = http(args.node, "GET", "/v1/authority")
    if status != 200:
        sys.exit(f"GET /v1/authority: HTTP {status}")
    authority = json.loads(body)

    config = e.default_config(e.FfiScheme.PET)
    config.trusted_node_keys = [authority["batch_public_key"]]
    config.scan_period_seconds = 60  # this app scans once a minute
    alice = e.EphemeraPhone(config, os.path.join(args.data_dir, "alice"))
    bob = e.EphemeraPhone(config, os.path.join(args.data_dir, "bob"))
    alice_app, bob_app = AppDriver(alice, args.node), AppDriver(bob, args.node)

    # Twenty minutes together, over two whole 10-minute intervals, ended 10-20 min ago.
    now = int(time.time())
    meet(alice, bob, (now // 600) * 600 - 30 * 60, 20)

    # Alice tests positive: the case worker gives her a code; the app starts the report.
    now = int(time.time())
    entries = alice.start_report(now, args.code, None, None)
    print(f"alice: report of {entries} tokens started")
    uploaded = False
    while not uploaded:
        now = int(time.time())
        alice_app.timers(now)
        for record in alice_app.pump(now):
            event = record.event
            if isinstance(event, e.FfiEvent.REPORT_UPLOADED):
                uploaded = True
                print("alice: report uploaded")
            elif isinstance(event, e.FfiEvent.REPORT_RETRYING):
                print(f"alice: retrying at {event.next_attempt}")
            elif isinstance(event, e.FfiEvent.REPORT_FAILED):
                sys.exit(f"alice: report failed: {event.reason}")
            alice.acknowledge_event(record.id)  # shown to the user: forget it
        if not uploaded:
            time.sleep(1)

    # Bob syncs until the next batch carries Alice's tokens (batches are cut on the node's
    # schedule: hourly by default, every second or so in CI).
    deadline = time.time() + args.deadline
    warned = None
    while warned is None and time.time() < deadline:
        now = int(time.time())
        bob.start_sync(now)
        for record in bob_app.pump(now):
            if isinstance(record.event, e.FfiEvent.EXPOSURE_FOUND):
                warned = record.event.exposure
            bob.acknowledge_event(record.id)
        if warned is None:
            time.sleep(1)
    if warned is None:
        sys.exit("bob: no exposure found before the deadline")
    minutes = sum(warned.minutes_per_bucket)
    print(f"bob: exposure on day {warned.day}: {minutes} minutes, high risk: {warned.high_risk}")
    status = bob.status()
    print(f"bob: cursor {status.sync_cursor}, unacknowledged events {status.unacknowledged_events}")
    if not warned.high_risk or minutes < 19:
        sys.exit("bob: the exposure should be 20 minutes and high risk")
    alice.close()
    bob.close()


if __name__ == "__main__":
    main()
