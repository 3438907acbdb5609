"""The client through its Python bindings: two phones meet, one reports, the other
ingests the batch and finds the exposure. Run by run.sh (which builds and generates)."""

import tempfile

import ephemera as e

T0 = 1_700_006_400  # a few hours into a UTC day


def drain(phone):
    while phone.poll_request() is not None:
        pass


def test_meet_report_match():
    node = e.TestNode(7)
    config = e.default_config(e.FfiScheme.PET)
    config.trusted_node_keys = [node.node_key()]
    config.decoy_rate_per_day = 0.0
    alice = e.EphemeraPhone(config, None)
    with tempfile.TemporaryDirectory() as data:
        bob = e.EphemeraPhone(config, data)

        # 15 minutes together, one exchange every 15 seconds, whole keys (extended adv.).
        for step in range(61):
            now = T0 + step * 15
            ad = alice.advertisement(now)
            assert len(ad.full) == 32 and len(ad.legacy) == 16
            bob.handle_sighting(now, ad.full, -55, None)
            bob_ad = bob.advertisement(now)
            alice.handle_sighting(now, bob_ad.full, -55, None)
        alice.close_all_encounters()
        bob.close_all_encounters()

        # Alice tests positive and reports.
        now = T0 + 3600
        drain(alice)
        entries = alice.start_report(now, node.issue_code(), None, None)
        assert entries >= 1, entries
        verify = alice.poll_request()
        assert verify.path == "/v1/verify" and verify.method == "POST"
        assert len(verify.body) == 512
        alice.handle_response(now, verify.id, 200, node.answer_verify(now, verify.body))
        upload = alice.poll_request()
        assert upload.path == "/v1/uploads"
        assert upload.content_type == "application/octet-stream"
        alice.handle_response(now, upload.id, 200, node.accept_upload(now, upload.body))
        event = alice.poll_event()
        assert isinstance(event, e.FfiEvent.REPORT_UPLOADED), event

        # Bob ingests the node's batch and finds the exposure.
        batch = node.cut_batch(now)
        assert bob.handle_batch(now, batch) >= 1
        event = bob.poll_event()
        assert isinstance(event, e.FfiEvent.EXPOSURE_FOUND), event
        exposure = event.exposure
        assert exposure.day == T0 // 86400
        assert exposure.minutes_per_bucket[0] >= 13, exposure
        assert exposure.high_risk
        assert len(bob.exposures(now)) == 1

        # A stranger finds nothing; a batch from an untrusted node is refused.
        stranger = e.EphemeraPhone(config, None)
        assert stranger.handle_batch(now, batch) == 0
        other = e.TestNode(8)
        try:
            bob.handle_batch(now, other.cut_batch(now))
        except e.FfiError:
            pass
        else:
            raise AssertionError("untrusted batch accepted")


if __name__ == "__main__":
    test_meet_report_match()
    print("1 passed, 0 failed")
