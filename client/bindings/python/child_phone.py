"""A phone app in a child process, for the kill-and-restart test (test_kill_restart.py).

    child_phone.py STEP STATE.json [KILL_AT]

STATE.json names the node, the phones' folders, the meeting time and the code. STEP is
`meet`, `report` or `sync`; the process SIGKILLs itself at the point KILL_AT names (a
real kill: no handler, no flush, no goodbye), or runs the step to its end and prints one
JSON line with what it saw. Every request it sends is appended to STATE.json's `log`
file, so the parent can count what went out.
"""

import json
import os
import signal
import sys
import time

import ephemera as e
from example_app import AppDriver

SCANS = 20  # a 20-minute contact, one scan a minute


def die_if(point, kill_at):
    if point == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def phone(state, name):
    config = e.default_config(e.FfiScheme.PET)
    config.trusted_node_keys = [state["batch_key"]]
    config.decoy_rate_per_day = 0.0
    config.scan_period_seconds = 60
    return e.EphemeraPhone(config, state[name])


class LoggingDriver(AppDriver):
    """The example driver, with every request written to the log and kill points."""

    def __init__(self, phone_, state, kill_at):
        super().__init__(phone_, state["node"])
        self.log = state["log"]
        self.kill_at = kill_at

    def send(self, request):
        with open(self.log, "a") as log:
            log.write(json.dumps({"path": request.path, "body": request.body.hex()}) + "\n")
        answer = super().send(request)
        # The answer arrived; the process dies before the phone is given it.
        die_if("response:" + last_segment(request), self.kill_at)
        return answer

    def exchange(self, now, request):
        super().exchange(now, request)
        die_if("handled:" + last_segment(request), self.kill_at)


def last_segment(request):
    """`verify`, `uploads`, `batches` (the index) or `batch` (one batch)."""
    if request.path.startswith("/v1/batches/"):
        return "batch"
    return request.path.split("?")[0].rsplit("/", 1)[-1]


def step_meet(state, kill_at):
    alice, bob = phone(state, "alice"), phone(state, "bob")
    t0 = state["t0"]
    # A resumed run starts after the scan the killed one ended with.
    for scan in range(state.get("meet_from", 0), SCANS):
        now = t0 + 60 * scan
        for hearer, speaker in ((alice, bob), (bob, alice)):
            hearer.handle_sighting(now, speaker.advertisement(now).full, -60, None)
        die_if(f"scan:{scan}", kill_at)
    # No close_all_encounters: the timers close the encounters later, as in an app that
    # was not told the contact ended.
    print(json.dumps({"open": bob.status().open_encounters}))


def step_report(state, kill_at):
    alice = phone(state, "alice")
    driver = LoggingDriver(alice, state, kill_at)
    now = int(time.time())
    if not alice.status().report_pending and not state_done(state):
        alice.handle_timeout(now)
        entries = alice.start_report(now, state["code"], None, None)
        die_if("started", kill_at)
        state_mark(state, entries)
    outcome = None
    deadline = time.time() + 60
    while outcome is None and time.time() < deadline:
        now = int(time.time())
        alice.retry_report(now) if alice.status().report_pending else None
        for record in driver.pump(now):
            event = record.event
            if isinstance(event, e.FfiEvent.REPORT_UPLOADED):
                outcome = {"uploaded": True}
            elif isinstance(event, e.FfiEvent.REPORT_FAILED):
                outcome = {
                    "uploaded": False,
                    "reason": type(event.reason).__name__,
                    "node_code": getattr(event.reason, "node_code", None),
                }
            alice.acknowledge_event(record.id)
        if outcome is None and not alice.status().report_pending:
            outcome = {"uploaded": False, "reason": "no report pending"}
        time.sleep(0.2)
    print(json.dumps(outcome))


def state_done(state):
    return os.path.exists(state["marker"])


def state_mark(state, entries):
    with open(state["marker"], "w") as marker:
        marker.write(str(entries))


def step_sync(state, kill_at):
    bob = phone(state, "bob")
    driver = LoggingDriver(bob, state, kill_at)
    seen = []
    # Events kept from a run that was killed before acknowledging them come first.
    while (record := bob.poll_event()) is not None:
        if isinstance(record.event, e.FfiEvent.EXPOSURE_FOUND):
            seen.append(record.event.exposure)
        bob.acknowledge_event(record.id)
    deadline = time.time() + 60
    while not seen and time.time() < deadline:
        now = int(time.time())
        bob.start_sync(now)
        for record in driver.pump(now):
            if isinstance(record.event, e.FfiEvent.EXPOSURE_FOUND):
                seen.append(record.event.exposure)
                die_if("exposure-polled", kill_at)
            bob.acknowledge_event(record.id)
        if not seen:
            time.sleep(0.5)
    exposures = bob.exposures(int(time.time()))
    print(
        json.dumps(
            {
                "event": [sum(x.minutes_per_bucket) for x in seen],
                "exposures": [sum(x.minutes_per_bucket) for x in exposures],
                "unacknowledged": bob.status().unacknowledged_events,
            }
        )
    )


def main():
    step, state_path = sys.argv[1], sys.argv[2]
    kill_at = sys.argv[3] if len(sys.argv) > 3 else None
    with open(state_path) as f:
        state = json.load(f)
    {"meet": step_meet, "report": step_report, "sync": step_sync}[step](state, kill_at)


if __name__ == "__main__":
    main()
