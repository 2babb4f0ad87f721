//! Tests of the runtime.

use super::*;

fn log(dir: &std::path::Path) -> Vec<Vec<u8>> {
    Store::open(dir, false).unwrap().records
}

#[test]
fn handlers_append_inline_only_while_nothing_is_ahead_of_them() {
    let rec = |b: &[u8]| vec![b.to_vec()];
    let tmp = tempfile::tempdir().unwrap();
    let r = Records::new(Store::open(tmp.path(), false).unwrap().store, 0);
    assert!(r.inline);
    assert_eq!(r.hand_off(rec(b"a")), Some(1), "durable at once");
    assert_eq!(r.hand_off(vec![b"b".to_vec(), b"c".to_vec()]), Some(3));
    // The flusher holds a batch (say a failed append it will retry): newer records queue.
    lock(&r.pending).busy = true;
    assert_eq!(r.hand_off(rec(b"d")), None);
    lock(&r.pending).busy = false;
    assert_eq!(
        r.hand_off(rec(b"e")),
        None,
        "d is still queued: e goes behind it"
    );
    assert_eq!(lock(&r.pending).queue, vec![b"d".to_vec(), b"e".to_vec()]);
    assert_eq!(lock(&r.pending).durable, 3);
    drop(r);
    assert_eq!(
        log(tmp.path()),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );

    // With fsync, or a batching window, every record goes through the flusher.
    for (fsync, flush_ms) in [(true, 0), (false, 5)] {
        let tmp = tempfile::tempdir().unwrap();
        let r = Records::new(Store::open(tmp.path(), fsync).unwrap().store, flush_ms);
        assert_eq!(r.hand_off(rec(b"a")), None);
        assert_eq!(lock(&r.pending).queue.len(), 1);
        drop(r);
        assert!(log(tmp.path()).is_empty());
    }
}
