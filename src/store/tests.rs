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
