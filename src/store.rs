//! A crash-safe, append-only record log: one file per node, holding the opaque records a
//! [`Workload`](crate::node::Workload) emits (see `Workload::take_records`).
//!
//! # Format
//! `records.log` is a sequence of frames `len: u32 LE | crc: u32 LE | payload[len]`, where `crc` is
//! CRC-32 (IEEE) over the four length bytes followed by the payload. Covering the length means a
//! zero-filled or bit-flipped header is caught as surely as a damaged payload.
//!
//! # Why it survives a crash
//! - **Appends only.** A batch is copied, as one run of frames, to the end of the last intact frame
//!   through a shared mapping of the file, then (with fsync on, [`Store::fsync`]) made durable
//!   with one `fdatasync` (group commit: one sync for every record of the batch). Bytes already
//!   durable are never rewritten, so a crash can only damage the tail.
//! - **Space is reserved ahead.** The file is allocated (`posix_fallocate` on Linux, so a full
//!   disk fails an append instead of killing the process with SIGBUS) and mapped 64 KiB
//!   (`RESERVE`) at a time, doubling; the unused tail is zeros, which a scan reads as the end of
//!   the log. An append is then a copy into memory, with no system call, where a `pwrite` would
//!   cost a call into the file system per batch.
//! - **Which crash.** Bytes copied into the mapping are the kernel's page cache: they survive the
//!   death of the process (SIGKILL, a panic) exactly as `pwrite`'s would. That is every crash
//!   Maelstrom injects, and the node's shell defaults to it (`MURMUR_FSYNC=0`). The `fdatasync` is
//!   needed only to survive a crash of the machine (power loss, kernel panic); its cost in node CPU
//!   is the `default+fsync` row of `results/BENCHMARKS.md`.
//! - **Torn tails are expected.** A kill or power loss in the middle of a batch leaves a partial
//!   frame; [`Store::open`] keeps every intact frame before it, truncates the rest (with a warning)
//!   and syncs (with fsync on), so the next append starts on a clean boundary. Nothing in that
//!   tail was ever reported durable, so nothing acknowledged is lost.
//! - **Corruption stops the scan.** A frame whose checksum fails in the middle of the file ends the
//!   log there: frames after it cannot be trusted to be aligned. The prefix is kept and the rest is
//!   truncated, as for a torn tail (a disk that flips bits is outside the fault model; the point is
//!   never to panic and never to lose the intact prefix).
//! - **New files and directories are synced** (with fsync on). Creating the node's directory syncs
//!   its parent, creating the file syncs the directory, so the file itself survives a crash of the
//!   machine right after start. Without fsync the kernel's own state is enough.
//! - **A failed append is retried in place.** The in-memory end of the log only moves after a
//!   successful append (allocation, copy, and sync if on); the caller retries the same batch,
//!   which is written at the same offset and so overwrites whatever a failed attempt left.
//!
//! # Compaction
//! Appends only ever add, so the log holds every record a node emitted, most of them superseded
//! (older link cursors, say) and the rest in the small records of many batches. When a compaction
//! is due (decided by the sans-IO host, [`crate::host::Host::take_compaction`]: the log at least
//! twice the workload's live state and 1 MiB), [`Store::compact`] replaces the whole log with a
//! snapshot: records that, recovered alone, rebuild the same state. Appends then continue after
//! the snapshot. The swap never shows less than one complete log:
//! 1. the snapshot's frames are written to a new file beside the log, [`COMPACT_NAME`]
//!    (created or truncated), with `write`, not through a mapping;
//! 2. with fsync on, the new file is synced (`fsync`), so its bytes are on disk before any name
//!    points at them;
//! 3. it is renamed over `records.log`: `rename` replaces the name atomically, so a crash before
//!    it leaves the old log and a crash after it the new one, each whole;
//! 4. with fsync on, the directory is synced, so the rename itself survives a crash of the
//!    machine. Should that sync fail, the store already writes to the new file (the old one is no
//!    longer the log), and retries the directory sync before its next append, so nothing is
//!    reported durable in a file a machine crash could unname.
//!
//! A kill (or power loss) between steps 1 and 3 leaves an unfinished `records.log.compact`
//! beside an intact old log; [`Store::open`] deletes it. The caller guarantees the snapshot
//! covers every record appended before it (the host offers one only when every record taken is
//! durable, and the shell holds the node's lock from snapshot to swap), so the old log and the
//! new one hold the same state and either is a correct recovery.
//!
//! # Where it lives
//! See [`data_root`]: `$MURMUR_DATA_DIR/<node id>/records.log` when the variable is set (our runner
//! sets it to a fresh folder per run), else `<tmp>/murmur/<parent>/<node id>/records.log`.
//!
//! One process at a time per directory: [`Store::open`] takes an exclusive advisory lock
//! (`flock`) on the node's directory, held while the [`Store`] lives and released by the kernel
//! when the process dies, so a second process with the same node id and data directory fails to
//! open it with a clear error instead of interleaving appends, while a restarted incarnation (the
//! previous one killed) opens it at once. The lock is on the directory rather than the log file
//! because a compaction renames a new file over the log: a lock on the old file would be left
//! on an unnamed inode, and a second process could open and lock the new one.
//!
//! Without `MURMUR_DATA_DIR`, every run leaves a folder under `<tmp>/murmur/`;
//! [`remove_stale_runs`] deletes the folders of runs whose parent process is gone, and the shell
//! calls it when a node starts there, so data lives only as long as the run that wrote it (plus
//! until the next run starts).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

/// The log's file name inside a node's data directory.
pub const FILE_NAME: &str = "records.log";

/// A compaction's new log, written beside the log and renamed over it once complete. One left
/// behind (a crash before the rename) is deleted by [`Store::open`].
pub const COMPACT_NAME: &str = "records.log.compact";

/// Frame header: length and checksum, 4 bytes each.
const HEADER: usize = 8;

/// The bytes a record of `payload_len` bytes takes in the log (header included): what a host
/// counts to know the log's size without asking the file.
pub const fn frame_len(payload_len: usize) -> u64 {
    (HEADER + payload_len) as u64
}

/// The largest payload [`Store::append`] accepts (1 GiB). The length field could say 4 GiB, but a
/// record that large is a bug upstream; refusing it keeps every written frame readable.
pub const MAX_RECORD: usize = 1 << 30;

/// Why the scan of a log stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside a frame header or payload (a write cut short by a crash), or a length
    /// field points past the end of the file.
    Torn,
    /// A complete frame whose checksum does not match.
    Checksum,
}

/// The outcome of scanning a log image: the intact records, and where and why it stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Vec<u8>>,
    /// Bytes covered by intact frames: where the next frame must be written.
    pub valid_len: usize,
    /// Set when bytes after `valid_len` were not an intact frame (nor only zeros: the space
    /// reserved for appends).
    pub damage: Option<Damage>,
}

/// Reads every intact frame of `bytes` in order, stopping at the first torn or corrupt one. Pure,
/// never panics, and allocates only for frames that are entirely present.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut pos = 0usize;
    let damage = loop {
        let rest = &bytes[pos..];
        // The end, or the zero-filled space reserved for later appends. No frame starts with eight
        // zero bytes (the checksum covers the length), so this stops within a frame's header
        // unless it is the tail.
        if rest.iter().all(|&b| b == 0) {
            break None;
        }
        let Some((header, body)) = rest.split_first_chunk::<HEADER>() else {
            break Some(Damage::Torn);
        };
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // Checked against what is present before anything is allocated: a huge or garbage length
        // is a torn tail, not an allocation.
        let len = u32::from_le_bytes(len_bytes) as usize;
        let Some(payload) = body.get(..len) else {
            break Some(Damage::Torn);
        };
        if checksum(&len_bytes, payload) != crc {
            break Some(Damage::Checksum);
        }
        records.push(payload.to_vec());
        pos += HEADER + len;
    };
    Scan {
        records,
        valid_len: pos,
        damage,
    }
}

fn checksum(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Appends the frame for `payload` to `out`. The caller checks `payload.len() <= MAX_RECORD`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let len_bytes = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&checksum(&len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The step in which the file is allocated and mapped ahead of the log's end: appends then cost a
/// copy into memory, and system calls only when the log outgrows the mapping (which then grows
/// by its own size, up to 64 steps at a time). Small, because the space is real disk: an idle
/// node's file costs this much, and without `MURMUR_DATA_DIR` nobody deletes it.
const RESERVE: u64 = 64 << 10;

/// An open log, positioned after its last intact frame.
#[derive(Debug)]
pub struct Store {
    file: File,
    path: PathBuf,
    /// The node's directory, opened and `flock`ed while the store lives (see the module docs:
    /// the lock is on the directory because a compaction replaces the log file).
    _lock: Option<File>,
    /// A compaction's rename is not yet known durable (fsync on, and the directory sync after it
    /// failed): the next append syncs the directory first, so nothing is reported durable in a
    /// file that a crash of the machine could unname.
    dir_unsynced: bool,
    /// End of the last durable frame: where the next batch is written.
    len: u64,
    /// `fdatasync` after each batch (see [`Store::fsync`]).
    fsync: bool,
    /// The file, shared-mapped from offset 0 over its allocated length ([`map_file`]); made by the
    /// first append.
    map: Option<MmapMut>,
}

/// A `MAP_SHARED`, read-write mapping of the first `len` bytes of `file` (unmapped when dropped).
/// Bytes copied into it are the page cache's: the kernel writes them to the file even if the
/// process is killed the next instant, exactly like bytes handed over by `pwrite`. The caller
/// has allocated the file to at least `len` bytes ([`allocate`]).
fn map_file(file: &File, len: usize) -> io::Result<MmapMut> {
    // SAFETY: memmap2 leaves one thing to the caller: that nothing truncates or rewrites the file
    // while the mapping lives, which would change or unmap (SIGBUS) memory this process reads and
    // writes as a plain byte slice. Nothing does: the file is this process's alone (one process at
    // a time per directory, see the module docs); this process truncates it only in
    // `Store::open`, before any mapping exists, and otherwise writes it only through the mapping
    // (a compaction writes a new file, never this one, and drops this mapping when it switches);
    // and the file is at least `len` bytes long, allocated, before it is mapped.
    unsafe { MmapOptions::new().len(len).map_mut(file) }
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    /// Every intact record, in the order it was appended.
    pub records: Vec<Vec<u8>>,
    /// Set if a damaged tail was truncated: (why, bytes discarded).
    pub repaired: Option<(Damage, u64)>,
}

/// `records` as one run of frames, or an error if one exceeds [`MAX_RECORD`] (nothing written).
fn frames(records: &[Vec<u8>]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + HEADER).sum());
    for r in records {
        if r.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a record of {} bytes exceeds {MAX_RECORD}", r.len()),
            ));
        }
        encode(r, &mut buf);
    }
    Ok(buf)
}

impl Store {
    /// Opens (creating if needed) the log in `dir`, loads every intact record, and truncates a torn
    /// or corrupt tail (logging a warning). Errors are I/O failures only (permissions, a full disk
    /// while repairing); damaged content is never an error.
    ///
    /// `fsync` is [`Store::fsync`]'s setting, and also decides whether creating and repairing
    /// are synced: without it nothing else survives a crash of the machine either, and the syncs
    /// are a noticeable share of a node's start-up, which the kill fault repeats.
    pub fn open(dir: &Path, fsync: bool) -> io::Result<Opened> {
        let sync_dir = |d: &Path| if fsync { sync_dir(d) } else { Ok(()) };
        if !dir.is_dir() {
            // With fsync, every directory created here has its entry made durable in its parent.
            let created: Vec<&Path> = dir
                .ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.is_dir())
                .collect();
            fs::create_dir_all(dir)?;
            for d in created {
                if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
        }
        let lock = lock_dir(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is locked by another process (a second node with the same id and data \
                         directory?)",
                        dir.display()
                    ),
                )
            } else {
                e
            }
        })?;
        // A compaction that did not reach its rename: the log beside it is the whole truth.
        let partial = dir.join(COMPACT_NAME);
        match fs::remove_file(&partial) {
            Ok(()) => tracing::warn!(
                path = %partial.display(),
                "removed an unfinished compaction; the log it was to replace is intact"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !existed && fsync {
            file.sync_all()?;
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let Scan {
            records,
            valid_len,
            damage,
        } = scan(&bytes);
        let discarded = (bytes.len() - valid_len) as u64;
        let repaired = damage.map(|d| (d, discarded));
        if let Some(d) = damage {
            tracing::warn!(
                path = %path.display(),
                kept_records = records.len(),
                kept_bytes = valid_len,
                discarded_bytes = discarded,
                "damaged log tail ({d:?}) truncated; every record before it is kept"
            );
            file.set_len(valid_len as u64)?;
            if fsync {
                file.sync_all()?;
            }
        }
        Ok(Opened {
            store: Store {
                file,
                path,
                _lock: lock,
                dir_unsynced: false,
                len: valid_len as u64,
                fsync,
                map: None,
            },
            records,
            repaired,
        })
    }

    /// Whether [`Store::append`] ends with an `fdatasync` or leaves the bytes in the kernel's page
    /// cache (chosen at [`Store::open`]). Without it a batch survives the death of the process
    /// (SIGKILL: the kernel still writes the pages back), which is every crash Maelstrom injects,
    /// but not a crash of the machine; an append then costs a copy into the mapped file instead of
    /// also waiting for a disk flush (see the module docs for the measured cost).
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// Appends `records` as one batch and makes them durable with a single sync (or, with fsync
    /// off, hands them to the kernel: see [`Store::fsync`]). On error nothing is reported
    /// durable and the log end does not move: retry with the same records (plus any newer ones
    /// after them).
    pub fn append(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let buf = frames(records)?;
        if self.dir_unsynced {
            sync_dir(self.dir())?;
            self.dir_unsynced = false;
        }
        let end = self.len + buf.len() as u64;
        let start = usize::try_from(self.len).map_err(io::Error::other)?;
        // In bounds: `reserve` maps at least `end` bytes.
        self.reserve(end)?[start..start + buf.len()].copy_from_slice(&buf);
        if self.fsync {
            // Written back with the file's other dirty pages: the mapping's are the page cache's.
            // On failure the bytes stay, beyond the log's end: the retry writes the same bytes at
            // the same offset, and a restart may find them intact, which is harmless (they were
            // emitted; only reporting them durable waits for a successful sync).
            self.file.sync_data()?;
        }
        self.len = end;
        Ok(())
    }

    /// Replaces the whole log with `records` (a snapshot of the node's state that, replayed alone,
    /// rebuilds what the log held): they are written to a new file beside the log
    /// ([`COMPACT_NAME`]), synced (with fsync on), renamed over the log, and the directory synced
    /// (with fsync on). A crash at any point leaves either the old log or the new one, whole.
    ///
    /// The caller must not have appended anything the snapshot does not cover. On error before
    /// the rename the old log is untouched and still in use; once the rename is done the new log
    /// is in use even if the directory sync after it failed (that sync is then retried before the
    /// next append, see `dir_unsynced`), since the old file is no longer the log.
    pub fn compact(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        let buf = frames(records)?;
        let dir = self.dir().to_path_buf();
        let tmp = dir.join(COMPACT_NAME);
        let written = (|| {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(&buf)?;
            if self.fsync {
                file.sync_all()?;
            }
            fs::rename(&tmp, &self.path)?;
            Ok::<File, io::Error>(file)
        })();
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                // Best effort: `Store::open` removes it too.
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // The rename is done: the new file is the log from now on.
        self.map = None;
        self.file = file;
        self.len = buf.len() as u64;
        if self.fsync {
            self.dir_unsynced = true;
            sync_dir(&dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// The node's directory, which holds the log.
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The mapping, covering at least `end` bytes: allocates the file and remaps it in steps of
    /// [`RESERVE`] (doubling, by at most 64 steps at a time), so most appends find room.
    fn reserve(&mut self, end: u64) -> io::Result<&mut MmapMut> {
        let mapped = self.map.as_ref().map_or(0, |m| m.len() as u64);
        if end > mapped {
            let step = mapped.clamp(RESERVE, 64 * RESERVE);
            let want = end.max(mapped + step).div_ceil(RESERVE) * RESERVE;
            let want_len = usize::try_from(want).map_err(io::Error::other)?;
            allocate(&self.file, want)?;
            self.map = None;
            self.map = Some(map_file(&self.file, want_len)?);
        }
        self.map
            .as_mut()
            .ok_or_else(|| io::Error::other("log not mapped"))
    }

    /// Bytes of intact, durable frames.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes `file` at least `len` bytes long with its blocks allocated (zeros), so that a store
/// through a mapping never lands in a hole the disk cannot fill: that would kill the process
/// (SIGBUS) instead of failing an append.
#[cfg(target_os = "linux")]
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: a plain system call on an open descriptor.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Elsewhere (no `posix_fallocate` on macOS): extend the file; a full disk then shows as SIGBUS.
#[cfg(not(target_os = "linux"))]
fn allocate(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() < len {
        file.set_len(len)?;
    }
    Ok(())
}

/// Opens `dir` and takes an exclusive advisory lock (`flock`) on it without waiting
/// (`WouldBlock` if another open file holds it). The lock belongs to this open directory: it goes
/// when the returned file is closed or the process dies. It is on the directory, not the log,
/// because a compaction renames a new file over the log: a lock on the old file would no longer
/// exclude a process opening the new one.
#[cfg(unix)]
fn lock_dir(dir: &Path) -> io::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: a plain system call on an open descriptor.
    if unsafe { libc::flock(d.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(Some(d))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_dir(_dir: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Makes a directory's entries durable (a new file or subdirectory in it).
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding every node's data directory.
///
/// - `MURMUR_DATA_DIR` set (pass its value): that directory. Our runner sets it to a fresh folder
///   inside each run's results, so runs never see each other's data.
/// - Unset (the real Maelstrom adds no variables): `<tmp>/murmur/<parent>`, where `<parent>` names
///   the parent process: its pid, plus its start time on Linux. Maelstrom's JVM spawns every
///   incarnation of every node of a run, so a node restarted by the `kill` fault finds its data
///   again, while a later run (another JVM) starts empty. The start time guards against the pid
///   being reused by a later run. [`remove_stale_runs`] deletes the folders of finished runs.
pub fn data_root(murmur_data_dir: Option<&std::ffi::OsStr>) -> PathBuf {
    match murmur_data_dir.filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => default_parent().join(parent_tag()),
    }
}

/// `<tmp>/murmur`: the default location's folder of runs.
pub fn default_parent() -> PathBuf {
    std::env::temp_dir().join("murmur")
}

/// `<ppid>` or `<ppid>-<start time in clock ticks since boot>` (Linux).
fn parent_tag() -> String {
    #[cfg(unix)]
    let ppid = std::os::unix::process::parent_id();
    #[cfg(not(unix))]
    let ppid = 0u32;
    tag_of(ppid)
}

/// The tag of process `pid` as it is now ([`parent_tag`]'s format).
fn tag_of(pid: u32) -> String {
    match start_time(pid) {
        Some(t) => format!("{pid}-{t}"),
        None => pid.to_string(),
    }
}

/// Process `pid`'s start time in clock ticks since boot, if it exists (Linux `/proc`).
fn start_time(pid: u32) -> Option<String> {
    // /proc/<pid>/stat: "pid (comm) state ppid ... starttime" — starttime is field 22. `comm` may
    // contain spaces and parentheses, so fields are counted after the last ')'.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 1..];
            after.split_whitespace().nth(19).map(str::to_string)
        })
        .filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the run a `<tmp>/murmur/` folder name ([`parent_tag`]) stands for has ended: its
/// parent process is gone, or the pid now belongs to a process started at another time. `None`
/// for a name that is not a tag (left alone) or where it cannot be told (no `/proc`).
fn run_ended(tag: &str) -> Option<bool> {
    let (pid, start) = match tag.split_once('-') {
        Some((p, t)) => (p, Some(t)),
        None => (tag, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !start.map_or(true, digits) || !Path::new("/proc/self/stat").exists() {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    Some(match (start, start_time(pid)) {
        (_, None) => true,
        (Some(want), Some(now)) => want != now,
        (None, Some(_)) => false,
    })
}

/// Deletes the data folders of ended runs (whose parent process is gone, or whose pid now belongs
/// to a process started later) under `root`, the default location's [`default_parent`], never
/// `keep` (this node's own run). Returns how many it deleted. Failures are logged and skipped:
/// nodes of several runs may sweep at once, and a folder another sweep deleted first is gone.
pub fn remove_stale_runs(root: &Path, keep: &Path) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let ended = entry.file_name().to_str().and_then(run_ended);
        if ended != Some(true) || path == keep || !path.is_dir() {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the data of an ended run");
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot remove an ended run's data: {e}")
            }
        }
    }
    removed
}

/// A node id as a single, safe path component: ASCII letters, digits and `-` are kept, any other
/// byte (`_` included) becomes `_` followed by its two hex digits, so distinct ids stay distinct and
/// no id (it comes from `init`, i.e. from stdin) can name `..` or an absolute path.
pub fn dir_name(node_id: &str) -> String {
    if node_id.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(node_id.len());
    for b in node_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
