"""Test harness: a real `ephemera-node serve` on loopback, and a case worker on it.

Starts the node binary from a temporary folder (so no ./ephemera.toml of a checkout is
read) with `--listen 127.0.0.1:0` and a short batch period, reads where it listens and the
first case worker's credentials from its stdout, signs in and issues codes over HTTP, as a
case worker's tools do. Loopback only.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from example_app import http

LISTEN_RE = re.compile(r"^ephemera-node listening on (http://127\.0\.0\.1:\d+)\s*$")
SUNSET_RE = re.compile(r"^ephemera-node sunset: listening on (http://127\.0\.0\.1:\d+)\s*$")
PEER_RE = re.compile(r"^\s*libp2p listening: (/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+)\s*$")


def node_binary():
    """The node binary built by `cargo build --workspace`."""
    explicit = os.environ.get("EPHEMERA_NODE_BIN")
    if explicit:
        return explicit
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    return os.path.join(target, "debug", "ephemera-node")


class Node:
    """A real node on loopback with a short batch period."""

    def __init__(self, batch_period_seconds=1, settings=None):
        """`settings` maps more `EPHEMERA_<SECTION>_<KEY>` variables to values."""
        self.work = tempfile.mkdtemp(prefix="ephemera-node-")
        self.data_dir = os.path.join(self.work, "data")
        self.stdout_path = os.path.join(self.work, "stdout")
        self.stderr_path = os.path.join(self.work, "stderr")
        self.env = dict(os.environ)
        self.env["EPHEMERA_BATCH_PERIOD_SECONDS"] = str(batch_period_seconds)
        self.env["EPHEMERA_BATCH_MIN_ENTRIES"] = "16"
        # Entries in the next batch, as the tests expect: the node's default spreads one
        # upload's entries over a day of batches (docs/PROTOCOL.md §6.3).
        self.env["EPHEMERA_PUBLICATION_RELEASE_SPREAD_SECONDS"] = "1"
        self.env["EPHEMERA_LOG_FILTER"] = "warn"
        # Not federation's fixed default port: harness nodes run side by side.
        self.env["EPHEMERA_FEDERATION_LISTEN"] = "127.0.0.1:0"
        self.env.update({name: str(value) for name, value in (settings or {}).items()})
        self.credentials = None
        self._start()

    def _start(self, sign_in=True):
        """Starts the node on its data folder; the first start prints the case worker's
        credentials, later ones reuse them. Without `sign_in` it only waits for the node to
        listen (a node that may stop at once to erase under a sunset order)."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [node_binary(), "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"],
                cwd=self.work,
                stdout=out,
                stderr=err,
                env=self.env,
            )
        self.url = None
        self.peer_addr = None
        name, password = self.credentials or (None, None)
        deadline = time.time() + 60
        while time.time() < deadline:
            text = open(self.stdout_path).read()
            for line in text.splitlines():
                match = LISTEN_RE.match(line)
                if match:
                    self.url = match.group(1)
                peer = PEER_RE.match(line)
                if peer:
                    self.peer_addr = peer.group(1)
                if line.startswith("  name:"):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("  password:"):
                    password = line.split(":", 1)[1].strip()
            federating = "  federation:" not in text  # "off" lines name it
            if self.url and name and password and (self.peer_addr or not federating):
                break
            if self.process.poll() is not None:
                raise RuntimeError("the node exited at start: " + open(self.stderr_path).read())
            time.sleep(0.1)
        if not (self.url and name and password):
            self.stop()
            raise RuntimeError("the node did not say where it listens within 60 s")
        self.credentials = (name, password)
        if not sign_in:
            return
        self.token = self._login(name, password)
        status, body, _ = http(self.url, "GET", "/v1/authority")
        assert status == 200, status
        self.authority = json.loads(body)

    def wait_for_sunset(self, deadline_s=60):
        """Waits until the node, stopped by a sunset order, erased its data and serves only
        the order and its receipt; `url` is then the erased node's."""
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            for line in open(self.stdout_path).read().splitlines():
                match = SUNSET_RE.match(line)
                if match:
                    self.url = match.group(1)
                    return
            time.sleep(0.2)
        raise AssertionError("the node did not erase within the deadline: "
                             + open(self.stderr_path).read())

    def command(self, *args):
        """Runs `ephemera-node <args> --data-dir <its folder>`; returns its stdout."""
        out = subprocess.run(
            [node_binary(), *args, "--data-dir", self.data_dir],
            cwd=self.work, env=self.env, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def restart(self, between=None):
        """Stops the node, calls `between()` while it is stopped, and starts it again on
        the same folder (on a new port: read `url` again)."""
        self._halt()
        if between:
            between()
        self._start()

    def _login(self, name, password):
        """Signs in; a first sign-in with the printed one-time password sets a password of
        the harness's own first (the node allows nothing else until then) and keeps it for
        later starts."""
        body = json.dumps({"name": name, "password": password}).encode()
        status, answer, _ = http(self.url, "POST", "/v1/session", body, "application/json")
        assert status == 200, (status, answer)
        session = json.loads(answer)
        if session.get("password_change_required"):
            chosen = "harness-" + password
            change = json.dumps({"current_password": password, "new_password": chosen}).encode()
            status, answer, _ = http(
                self.url,
                "POST",
                "/v1/session/password",
                change,
                "application/json",
                {"Authorization": "Bearer " + session["token"]},
            )
            assert status == 204, (status, answer)
            self.credentials = (name, chosen)
        return session["token"]

    def issue_code(self, test_type="confirmed", symptom_onset=None):
        """One upload code, as the case-worker page issues it."""
        request = {"test_type": test_type, "count": 1}
        if symptom_onset:
            request["symptom_onset"] = symptom_onset
        status, answer, _ = http(
            self.url,
            "POST",
            "/v1/codes",
            json.dumps(request).encode(),
            "application/json",
            {"Authorization": "Bearer " + self.token},
        )
        assert status == 200, (status, answer)
        return json.loads(answer)["codes"][0]["code"]

    def metric(self, name):
        """The value of an unlabelled metric."""
        status, body, _ = http(self.url, "GET", "/metrics")
        assert status == 200, status
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        self._halt()
        shutil.rmtree(self.work, ignore_errors=True)

    def _halt(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
