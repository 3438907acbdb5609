use super::*;

const NOW: UnixTime = UnixTime(1_700_000_000);

fn node_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    NodeKeys::load_or_create(dir.path(), &mut rand::rng()).unwrap();
    dir
}

#[test]
fn a_batch_rotation_announces_overlaps_then_switches_and_keeps_its_history() {
    let dir = node_folder();
    let before = NodeKeys::load(dir.path()).unwrap();
    let begun = begin(
        dir.path(),
        RotatedKey::Batch,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    assert_eq!(
        begun.current,
        before.batch.public_key().key_id().to_string()
    );

    let overlap = NodeKeys::load(dir.path()).unwrap();
    assert_eq!(
        overlap.batch.public_key(),
        before.batch.public_key(),
        "batches keep the pinned key"
    );
    let next = overlap.next.batch.as_ref().unwrap().public_key();
    assert_eq!(begun.next, next.key_id().to_string());
    let [rollover] = overlap.rollovers.as_slice() else {
        panic!("one rollover: {:?}", overlap.rollovers)
    };
    assert_eq!(
        (rollover.role, rollover.old, rollover.new),
        (KeyRole::Batch, before.batch.public_key(), next)
    );
    assert_eq!(rollover.verify(), Ok(()));
    assert!(matches!(
        begin(
            dir.path(),
            RotatedKey::Batch,
            NOW,
            None,
            "v1",
            &mut rand::rng()
        ),
        Err(KeyError::RotationUnderWay { key: "batch", .. })
    ));
    let shown = status(dir.path(), "v1").unwrap().to_string();
    assert!(
        shown.contains("batch     ") && shown.contains("(overlap)"),
        "{shown}"
    );
    assert!(shown.contains(&hex::encode(rollover.to_bytes())), "{shown}");

    let switched = finish(dir.path(), RotatedKey::Batch).unwrap();
    assert_eq!(
        (switched.current, switched.next),
        (begun.current.clone(), begun.next)
    );
    let after = NodeKeys::load(dir.path()).unwrap();
    assert_eq!(after.batch.public_key(), next);
    assert!(after.next.batch.is_none());
    assert_eq!(after.rollovers.len(), 1, "the rollover stays published");
    assert_eq!(after.authority.public_key(), before.authority.public_key());
    let retired = status(dir.path(), "v1").unwrap().retired;
    assert_eq!(retired, vec![format!("batch.seed.{}", begun.current)]);
    assert!(matches!(
        finish(dir.path(), RotatedKey::Batch),
        Err(KeyError::NoRotation { key: "batch" })
    ));

    // A second rotation chains on: K1 -> K2 -> K3.
    begin(
        dir.path(),
        RotatedKey::Batch,
        UnixTime(NOW.0 + 60),
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    finish(dir.path(), RotatedKey::Batch).unwrap();
    let chained = NodeKeys::load(dir.path()).unwrap();
    let mut trusted = ephemera_proto::batch::TrustedNodes::new().with(before.batch.public_key());
    trusted.follow(KeyRole::Batch, &chained.rollovers);
    assert!(trusted.contains(&chained.batch.public_key()));
}

#[test]
fn an_authority_rotation_is_announced_under_the_authority_key() {
    let dir = node_folder();
    let before = NodeKeys::load(dir.path()).unwrap();
    begin(
        dir.path(),
        RotatedKey::Authority,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    let overlap = NodeKeys::load(dir.path()).unwrap();
    assert_eq!(overlap.rollovers[0].role, KeyRole::Authority);
    assert_eq!(overlap.rollovers[0].old, before.authority.public_key());
    assert!(overlap.next.batch.is_none());
    finish(dir.path(), RotatedKey::Authority).unwrap();
    let after = NodeKeys::load(dir.path()).unwrap();
    assert_eq!(after.authority.public_key(), overlap.rollovers[0].new);
    assert_eq!(after.batch.public_key(), before.batch.public_key());
}

#[test]
fn an_export_rotation_carries_its_gaen_version() {
    let dir = node_folder();
    assert!(matches!(
        begin(
            dir.path(),
            RotatedKey::Export,
            NOW,
            Some("v1"),
            "v1",
            &mut rand::rng()
        ),
        Err(KeyError::BadVersion { .. })
    ));
    assert!(matches!(
        begin(
            dir.path(),
            RotatedKey::Export,
            NOW,
            Some("v 2"),
            "v1",
            &mut rand::rng()
        ),
        Err(KeyError::BadVersion { .. })
    ));
    let before = NodeKeys::load(dir.path()).unwrap();
    begin(
        dir.path(),
        RotatedKey::Export,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    let overlap = NodeKeys::load(dir.path()).unwrap();
    let (next, version) = overlap.next.export.as_ref().unwrap();
    assert_eq!(version, "v2");
    assert!(
        overlap.rollovers.is_empty(),
        "GAEN apps learn export keys from their own servers"
    );
    let state = status(dir.path(), "v1").unwrap();
    assert_eq!(
        state.keys[2].version,
        Some(("v1".to_owned(), Some("v2".to_owned())))
    );
    finish(dir.path(), RotatedKey::Export).unwrap();
    let after = NodeKeys::load(dir.path()).unwrap();
    assert_eq!(after.export.public_point(), next.public_point());
    assert_ne!(after.export.public_point(), before.export.public_point());
    assert_eq!(after.export_version.as_deref(), Some("v2"));
    // The next rotation counts on from the version the last one set.
    begin(
        dir.path(),
        RotatedKey::Export,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    assert_eq!(
        NodeKeys::load(dir.path()).unwrap().next.export.unwrap().1,
        "v3"
    );
}

#[test]
fn an_interrupted_step_is_named_and_completed_by_running_it_again() {
    let dir = node_folder();
    let keys = dir.path().join(KEYS_DIR);
    begin(
        dir.path(),
        RotatedKey::Batch,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    // A crash before the rollover was written.
    fs::remove_dir_all(keys.join(ROLLOVERS_DIR)).unwrap();
    let error = finish(dir.path(), RotatedKey::Batch).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("run `ephemera-node keys rotate batch` again"),
        "{error}"
    );
    let next = NodeKeys::load(dir.path())
        .unwrap()
        .next
        .batch
        .unwrap()
        .public_key();
    let again = begin(
        dir.path(),
        RotatedKey::Batch,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    assert_eq!(
        again.next,
        next.key_id().to_string(),
        "the same next key is announced"
    );
    finish(dir.path(), RotatedKey::Batch).unwrap();

    // A crash in the export switch, after the key moved and before its version did.
    begin(
        dir.path(),
        RotatedKey::Export,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    fs::rename(keys.join(EXPORT_NEXT_FILE), keys.join(EXPORT_FILE)).unwrap();
    let error = NodeKeys::load(dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("keys rotate export --finish"),
        "{error}"
    );
    assert!(matches!(
        finish(dir.path(), RotatedKey::Export),
        Err(KeyError::NoRotation { .. })
    ));
    assert_eq!(
        NodeKeys::load(dir.path())
            .unwrap()
            .export_version
            .as_deref(),
        Some("v2")
    );

    // A crash in the export begin, after the next key and before its version.
    let begun = begin(
        dir.path(),
        RotatedKey::Export,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    fs::remove_file(keys.join(EXPORT_NEXT_VERSION_FILE)).unwrap();
    let error = NodeKeys::load(dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("run `ephemera-node keys rotate export` again"),
        "{error}"
    );
    let again = begin(
        dir.path(),
        RotatedKey::Export,
        NOW,
        None,
        "v1",
        &mut rand::rng(),
    )
    .unwrap();
    assert_eq!(again, begun, "the same next key, now with its version");
    assert_eq!(
        NodeKeys::load(dir.path()).unwrap().next.export.unwrap().1,
        "v3"
    );

    // A corrupt rollover file is refused, never skipped.
    let frame = fs::read_dir(keys.join(ROLLOVERS_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&frame).unwrap();
    bytes[40] ^= 1;
    fs::write(&frame, bytes).unwrap();
    assert!(matches!(
        NodeKeys::load(dir.path()),
        Err(KeyError::Corrupt { .. })
    ));
}

#[test]
fn versions_count_up() {
    assert_eq!(bumped("v1").unwrap(), "v2");
    assert_eq!(bumped("v9").unwrap(), "v10");
    assert_eq!(bumped("ephemera").unwrap(), "ephemera2");
    assert!(bumped(&format!("v{}", u64::MAX)).is_err());
}
