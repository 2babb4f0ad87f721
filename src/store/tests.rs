use super::*;

fn image(records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        encode(r, &mut out);
    }
    out
}

fn owned(records: &[&[u8]]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.to_vec()).collect()
}

const RECS: [&[u8]; 4] = [b"alpha", b"", b"gamma gamma", &[0, 1, 2, 255]];

#[test]
fn round_trip_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("n1");
    let mut o = Store::open(&node, true).unwrap();
    assert!(o.records.is_empty() && o.repaired.is_none() && o.store.is_empty());
    o.store.append(&owned(&RECS[..2])).unwrap();
    o.store.append(&[]).unwrap();
    o.store.append(&owned(&RECS[2..])).unwrap();
    let len = o.store.len();
    drop(o);
    let mut o = Store::open(&node, true).unwrap();
    assert_eq!(o.records, owned(&RECS));
    assert_eq!(o.repaired, None);
    assert_eq!(o.store.len(), len);
    o.store.append(&owned(&[b"more"])).unwrap();
    drop(o);
    let o = Store::open(&node, true).unwrap();
    assert_eq!(o.records.len(), 5);
    assert_eq!(o.records[4], b"more");
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record() {
    let full = image(&RECS);
    let last_start = image(&RECS[..3]).len();
    for cut in last_start..full.len() {
        let s = scan(&full[..cut]);
        assert_eq!(s.records, owned(&RECS[..3]), "cut at {cut}");
        assert_eq!(s.valid_len, last_start);
        assert_eq!(
            s.damage,
            (cut > last_start).then_some(Damage::Torn),
            "cut at {cut}"
        );
    }
    assert_eq!(scan(&full).records, owned(&RECS));
}

#[test]
fn torn_tail_is_truncated_on_disk_and_appends_continue_cleanly() {
    let full = image(&RECS);
    let last_start = image(&RECS[..3]).len();
    for cut in last_start + 1..full.len() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &full[..cut]).unwrap();
        let mut o = Store::open(dir.path(), true).unwrap();
        assert_eq!(o.records, owned(&RECS[..3]));
        assert_eq!(o.repaired, Some((Damage::Torn, (cut - last_start) as u64)));
        assert_eq!(
            fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(),
            last_start as u64
        );
        o.store.append(&owned(&[b"after"])).unwrap();
        drop(o);
        let o = Store::open(dir.path(), true).unwrap();
        let mut want = owned(&RECS[..3]);
        want.push(b"after".to_vec());
        assert_eq!(o.records, want);
        assert_eq!(o.repaired, None);
    }
}

#[test]
fn corrupt_checksum_in_the_middle_keeps_the_prefix() {
    let mut bytes = image(&RECS);
    let second = image(&RECS[..1]).len();
    let third = image(&RECS[..2]).len();
    // Flip a payload byte of the third record, then a checksum byte of the second.
    let mut a = bytes.clone();
    a[third + HEADER] ^= 0x40;
    let s = scan(&a);
    assert_eq!(s.records, owned(&RECS[..2]));
    assert_eq!((s.valid_len, s.damage), (third, Some(Damage::Checksum)));
    bytes[second + 5] ^= 1;
    let s = scan(&bytes);
    assert_eq!(s.records, owned(&RECS[..1]));
    assert_eq!((s.valid_len, s.damage), (second, Some(Damage::Checksum)));

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
    let o = Store::open(dir.path(), true).unwrap();
    assert_eq!(o.records, owned(&RECS[..1]));
    assert_eq!(
        o.repaired,
        Some((Damage::Checksum, (bytes.len() - second) as u64))
    );
}

#[test]
fn zero_filled_tail_is_the_end_not_empty_records() {
    // Appends reserve zero-filled space ahead; a zero header must not read as a record, and
    // zeros followed by anything else are damage.
    let mut bytes = image(&RECS[..1]);
    let keep = bytes.len();
    bytes.extend_from_slice(&[0u8; 64]);
    let s = scan(&bytes);
    assert_eq!(s.records, owned(&RECS[..1]));
    assert_eq!((s.valid_len, s.damage), (keep, None));
    bytes.push(1);
    let s = scan(&bytes);
    assert_eq!(s.records, owned(&RECS[..1]));
    assert_eq!((s.valid_len, s.damage), (keep, Some(Damage::Checksum)));
}

#[test]
fn appends_grow_the_reserved_space_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Store::open(dir.path(), true).unwrap();
    // Past several reservation steps, in batches of varied sizes.
    let big = vec![7u8; 300_000];
    let mut want = Vec::new();
    for i in 0..8u8 {
        let batch = vec![big[..40_000 * usize::from(i)].to_vec(), vec![i]];
        o.store.append(&batch).unwrap();
        want.extend(batch);
    }
    let len = o.store.len();
    assert!(len > RESERVE, "{len}");
    let file_len = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
    assert!(file_len >= len && file_len % RESERVE == 0, "{file_len}");
    drop(o);
    let o = Store::open(dir.path(), true).unwrap();
    assert_eq!(o.records, want);
    assert_eq!((o.repaired, o.store.len()), (None, len));
}

#[test]
fn empty_and_missing_files() {
    assert_eq!(
        scan(&[]),
        Scan {
            records: vec![],
            valid_len: 0,
            damage: None
        }
    );
    let dir = tempfile::tempdir().unwrap();
    // Missing directory (two levels) and file.
    let node = dir.path().join("deep").join("n0");
    let o = Store::open(&node, true).unwrap();
    assert!(o.records.is_empty());
    assert!(node.join(FILE_NAME).is_file());
    // Existing empty file.
    let other = dir.path().join("n1");
    fs::create_dir(&other).unwrap();
    fs::write(other.join(FILE_NAME), b"").unwrap();
    let o = Store::open(&other, true).unwrap();
    assert!(o.records.is_empty() && o.repaired.is_none());
    drop(o);
    // A few garbage bytes (shorter than a header).
    fs::write(other.join(FILE_NAME), b"xyz").unwrap();
    let o = Store::open(&other, true).unwrap();
    assert!(o.records.is_empty());
    assert_eq!(o.repaired, Some((Damage::Torn, 3)));
}

#[test]
fn huge_length_field_is_a_torn_tail_not_an_allocation() {
    let mut bytes = image(&RECS[..2]);
    let keep = bytes.len();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 4]);
    bytes.extend_from_slice(b"short");
    let s = scan(&bytes);
    assert_eq!(s.records, owned(&RECS[..2]));
    assert_eq!((s.valid_len, s.damage), (keep, Some(Damage::Torn)));
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let good = image(&RECS);
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..bytes.len());
            bytes[i] = rng.random();
        }
        bytes.truncate(rng.random_range(0..=bytes.len()));
        let s = scan(&bytes);
        assert!(s.valid_len <= bytes.len());
        // Whatever survives is a prefix of what was written (a forged frame is a 2^-32 event
        // and cannot occur with this seed).
        assert_eq!(s.records[..], owned(&RECS)[..s.records.len()]);
    }
}

#[test]
fn oversized_records_are_refused_without_touching_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Store::open(dir.path(), true).unwrap();
    o.store.append(&owned(&[b"ok"])).unwrap();
    let len = o.store.len();
    let big = vec![0u8; MAX_RECORD + 1];
    let err = o.store.append(&[b"x".to_vec(), big]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(o.store.len(), len);
    drop(o);
    assert_eq!(
        Store::open(dir.path(), true).unwrap().records,
        owned(&[b"ok"])
    );
}

#[test]
fn data_root_and_dir_names() {
    let d = data_root(Some(std::ffi::OsStr::new("/x/y")));
    assert_eq!(d, PathBuf::from("/x/y"));
    let d = data_root(None);
    assert!(d.starts_with(std::env::temp_dir().join("murmur")), "{d:?}");
    assert_eq!(
        data_root(Some(std::ffi::OsStr::new(""))),
        d,
        "empty = unset"
    );
    assert_eq!(dir_name("n12"), "n12");
    assert_eq!(dir_name(".."), "_2e_2e");
    assert_eq!(dir_name("/etc"), "_2fetc");
    assert_eq!(dir_name("a_b"), "a_5fb");
    assert_eq!(dir_name(""), "_");
    assert_ne!(dir_name("a/b"), dir_name("a_b"));
}

#[test]
fn a_second_open_of_a_log_in_use_fails_and_a_closed_one_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Store::open(dir.path(), false).unwrap();
    first.store.append(&owned(&[b"kept"])).unwrap();
    let err = Store::open(dir.path(), false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    drop(first);
    let again = Store::open(dir.path(), false).unwrap();
    assert_eq!(
        again.records,
        owned(&[b"kept"]),
        "the refused open changed nothing"
    );
}

#[test]
fn ended_runs_are_recognised_by_their_parent_process() {
    if !Path::new("/proc/self/stat").exists() {
        return; // liveness is only known through /proc
    }
    let me = std::process::id();
    assert_eq!(run_ended(&tag_of(me)), Some(false), "this process is alive");
    assert_eq!(
        run_ended(&me.to_string()),
        Some(false),
        "a tag without start time"
    );
    assert_eq!(
        run_ended(&format!("{me}-1")),
        Some(true),
        "pid reused by another process"
    );
    // Above the kernel's pid limit (4194304 at most): no such process.
    assert_eq!(run_ended("999999999-5"), Some(true));
    assert_eq!(run_ended("999999999"), Some(true));
    for other in ["n1", "12-", "-3", "1-2-3", "abc", ""] {
        assert_eq!(run_ended(other), None, "{other:?} is not a tag");
    }
}

#[test]
fn only_the_folders_of_ended_runs_are_removed() {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let d = root.path().join(name).join("n1");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(FILE_NAME), b"x").unwrap();
        root.path().join(name)
    };
    let dead = make("999999999-7");
    let dead_no_start = make("999999998");
    let alive = make(&tag_of(std::process::id()));
    let foreign = make("not-a-run");
    let kept_own = make("999999997-1");
    fs::write(root.path().join("999999996-1"), b"a file, not a run").unwrap();
    assert_eq!(remove_stale_runs(root.path(), &kept_own), 2);
    assert!(!dead.exists() && !dead_no_start.exists());
    assert!(alive.exists() && foreign.exists() && kept_own.exists());
    assert!(root.path().join("999999996-1").exists());
    assert_eq!(
        remove_stale_runs(&root.path().join("missing"), &kept_own),
        0
    );
}

#[test]
fn compaction_replaces_the_log_and_appends_continue_after_it() {
    for fsync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Store::open(dir.path(), fsync).unwrap();
        o.store.append(&owned(&RECS)).unwrap();
        // Past a reservation step, so the old file is mapped and allocated ahead.
        o.store.append(&[vec![9u8; 100_000]]).unwrap();
        o.store.compact(&owned(&[b"snap", b"shot"])).unwrap();
        assert_eq!(o.store.len(), image(&[b"snap", b"shot"]).len() as u64);
        assert!(!dir.path().join(COMPACT_NAME).exists());
        o.store.append(&owned(&[b"after"])).unwrap();
        // The lock is on the directory: the swap did not open a gap for a second process.
        let err = Store::open(dir.path(), fsync).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        drop(o);
        let o = Store::open(dir.path(), fsync).unwrap();
        assert_eq!(o.records, owned(&[b"snap", b"shot", b"after"]));
        assert_eq!(o.repaired, None);
    }
}

#[test]
fn an_unfinished_compaction_is_removed_and_the_old_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), image(&RECS)).unwrap();
    let snapshot = image(&[b"new"]);
    fs::write(dir.path().join(COMPACT_NAME), &snapshot[..5]).unwrap();
    let o = Store::open(dir.path(), true).unwrap();
    assert_eq!(o.records, owned(&RECS));
    assert!(!dir.path().join(COMPACT_NAME).exists());
}

#[test]
fn a_refused_compaction_leaves_the_log_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Store::open(dir.path(), false).unwrap();
    o.store.append(&owned(&RECS)).unwrap();
    let len = o.store.len();
    let err = o.store.compact(&[vec![0u8; MAX_RECORD + 1]]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(o.store.len(), len);
    o.store.append(&owned(&[b"more"])).unwrap();
    drop(o);
    let mut want = owned(&RECS);
    want.push(b"more".to_vec());
    assert_eq!(Store::open(dir.path(), false).unwrap().records, want);
}

// ---------------------------------------------------------------------------------------------
// Fuzzing (property tests): `Store::open` over arbitrary bytes, over damaged valid logs, and over
// every state a compaction can leave behind. `cargo-fuzz` needs a nightly toolchain; these run on
// stable with the rest of the tests. `MURMUR_TEST_STORE_FUZZ_CASES` sets the cases per property
// (default 64, a few seconds in all; CI raises it).

use proptest::prelude::*;

/// Cases per property: `MURMUR_TEST_STORE_FUZZ_CASES`, else 64.
fn fuzz_cases() -> u32 {
    std::env::var("MURMUR_TEST_STORE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(64)
}

fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..12)
}

/// A way to damage a log image.
#[derive(Debug, Clone)]
enum Harm {
    /// Cut the file at this fraction (of 1000) of its length.
    Truncate(u16),
    /// Set the byte at this position (mod length) to this value.
    Set(usize, u8),
    /// Flip these bits of the byte at this position.
    Flip(usize, u8),
    /// Zero this many bytes from this position.
    Zero(usize, u8),
    /// Insert these bytes at this position.
    Insert(usize, Vec<u8>),
    /// Append these bytes.
    Append(Vec<u8>),
}

fn damage_strategy() -> impl Strategy<Value = Harm> {
    prop_oneof![
        (0u16..=1000).prop_map(Harm::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Harm::Set(i, b)),
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Harm::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, n)| Harm::Zero(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Harm::Insert(i, b)),
        prop::collection::vec(any::<u8>(), 1..32).prop_map(Harm::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Harm) {
    let n = bytes.len();
    match d {
        Harm::Truncate(f) => bytes.truncate(n * usize::from(*f) / 1000),
        Harm::Set(i, b) if n > 0 => bytes[i % n] = *b,
        Harm::Flip(i, b) if n > 0 => bytes[i % n] ^= *b,
        Harm::Zero(i, k) if n > 0 => {
            let at = i % n;
            let end = (at + usize::from(*k)).min(n);
            bytes[at..end].fill(0);
        }
        Harm::Insert(i, b) => {
            let at = if n == 0 { 0 } else { i % (n + 1) };
            bytes.splice(at..at, b.iter().copied());
        }
        Harm::Append(b) => bytes.extend_from_slice(b),
        _ => {}
    }
}

/// Opens `dir` and checks what every open must guarantee, whatever the bytes: the records are
/// those of the file's intact prefix, the file is cut to it, a reopen finds the same, and an
/// append after it reads back.
fn open_and_check(dir: &Path) -> Vec<Vec<u8>> {
    let o = Store::open(dir, false).expect("damaged content is never an I/O error");
    let on_disk = fs::metadata(dir.join(FILE_NAME)).unwrap().len();
    assert!(o.store.len() <= on_disk);
    assert!(
        !dir.join(COMPACT_NAME).exists(),
        "an unfinished compaction is removed"
    );
    let records = o.records.clone();
    let mut store = o.store;
    store.append(&owned(&[b"probe"])).unwrap();
    drop(store);
    let again = Store::open(dir, false).unwrap();
    let mut want = records.clone();
    want.push(b"probe".to_vec());
    assert_eq!(again.records, want, "reopen after repair and append");
    assert_eq!(again.repaired, None);
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    /// Any bytes at all, as the log and as a compaction left behind: open never panics nor
    /// fails, and returns only frames whose checksums hold.
    #[test]
    fn open_of_arbitrary_bytes(
        log in prop::collection::vec(any::<u8>(), 0..2048),
        partial in prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &log).unwrap();
        if let Some(p) = &partial {
            fs::write(dir.path().join(COMPACT_NAME), p).unwrap();
        }
        let records = open_and_check(dir.path());
        // What came back re-encodes to the file's prefix.
        let mut prefix = Vec::new();
        for r in &records {
            encode(r, &mut prefix);
        }
        prop_assert_eq!(&log[..prefix.len()], &prefix[..]);
    }

    /// A valid log, damaged: what open returns is a prefix of what was written.
    #[test]
    fn damaged_valid_logs_give_a_prefix(
        written in records_strategy(),
        damage in prop::collection::vec(damage_strategy(), 1..4),
    ) {
        let mut bytes = Vec::new();
        for r in &written {
            encode(r, &mut bytes);
        }
        for d in &damage {
            apply(&mut bytes, d);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let got = open_and_check(dir.path());
        prop_assert!(got.len() <= written.len());
        prop_assert_eq!(&got[..], &written[..got.len()]);
    }

    /// Every state a compaction can leave: (a) killed before its rename, the new file partly or
    /// wholly written (and maybe damaged) beside the old log: the old log, whole; (b) after the
    /// rename, with later appends torn or damaged: the snapshot and a prefix of the appends.
    #[test]
    fn every_compaction_state_gives_old_or_new(
        old in records_strategy(),
        snapshot in records_strategy(),
        later in records_strategy(),
        cut in 0u16..=1000,
        damage in prop::option::of(damage_strategy()),
        renamed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Store::open(dir.path(), false).unwrap();
        o.store.append(&old).unwrap();
        if renamed {
            o.store.compact(&snapshot).unwrap();
            o.store.append(&later).unwrap();
            let len = o.store.len() as usize;
            drop(o);
            // A crash tears or damages only what follows the snapshot.
            let path = dir.path().join(FILE_NAME);
            let mut bytes = fs::read(&path).unwrap();
            bytes.truncate(len);
            let base = image(&snapshot.iter().map(Vec::as_slice).collect::<Vec<_>>()).len();
            let mut tail = bytes.split_off(base);
            tail.truncate(tail.len() * usize::from(cut) / 1000);
            if let Some(d) = &damage {
                apply(&mut tail, d);
            }
            bytes.extend(tail);
            fs::write(&path, &bytes).unwrap();
            let got = open_and_check(dir.path());
            prop_assert!(got.len() >= snapshot.len(), "the snapshot is never lost");
            prop_assert_eq!(&got[..snapshot.len()], &snapshot[..]);
            let rest = &got[snapshot.len()..];
            prop_assert_eq!(rest, &later[..rest.len()]);
        } else {
            drop(o);
            let mut partial = Vec::new();
            for r in &snapshot {
                encode(r, &mut partial);
            }
            partial.truncate(partial.len() * usize::from(cut) / 1000);
            if let Some(d) = &damage {
                apply(&mut partial, d);
            }
            fs::write(dir.path().join(COMPACT_NAME), &partial).unwrap();
            prop_assert_eq!(open_and_check(dir.path()), old);
        }
    }
}
