//! Classification of `rbd`/`ceph` failures, done once where the process
//! exits: both CLIs exit with the errno of the failed librados/librbd call
//! (`rbd`) or 1 with an `[errno N]` / `(N) …` text (`ceph`), so the exit
//! code decides and a few stable phrases of standard error refine it
//! (the captured texts are under `fixtures/`). Nothing upstream of this file
//! looks at message strings.

use std::fmt;

use clinker_exec::Output;

use crate::DriverError;

/// What went wrong, in the driver's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CephErrorKind {
    /// The client never reached the cluster (monitors down or unreachable,
    /// unreadable configuration, no keyring): nothing was done, so the
    /// command may be retried.
    Unreachable,
    /// The command started but did not finish in time (cluster hung, pool
    /// full with `rados_osd_op_timeout` set, our own deadline).
    TimedOut,
    /// cephx refused: the user's caps do not allow it (EPERM/EACCES).
    PermissionDenied,
    /// The configured pool does not exist.
    PoolMissing,
    /// The `rbd` or `ceph` program could not be started.
    ToolMissing,
    /// The image or snapshot does not exist (ENOENT).
    NotFound,
    /// The image or snapshot already exists (EEXIST).
    Exists,
    /// In use: watchers on the image, children of a snapshot (EBUSY).
    Busy,
    /// The image still has snapshots (ENOTEMPTY).
    HasSnapshots,
    /// The pool is full or over its quota (ENOSPC, EDQUOT).
    NoSpace,
    /// The request was refused as invalid (EINVAL: shrinking, flattening an
    /// image without a parent, unprotecting an unprotected snapshot).
    InvalidArgument,
    /// The tool died on a signal (librados in Ceph 16 sometimes aborts
    /// as it shuts down, after doing its work): for a read, running it
    /// again is safe; for a write, whether it happened is unknown.
    Crashed,
    /// Anything else.
    Other,
}

/// A failed `rbd`/`ceph` command, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CephError {
    /// The classification.
    pub(crate) kind: CephErrorKind,
    /// What was being done and what the tool said, one line.
    pub(crate) message: String,
}

impl fmt::Display for CephError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl CephError {
    pub(crate) fn new(kind: CephErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the tool said `phrase` (for the few errors whose errno is
    /// shared by several causes, like EBUSY for "already protected").
    pub(crate) fn says(&self, phrase: &str) -> bool {
        self.message.contains(phrase)
    }
}

// errno values the tools exit with (Linux).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const ENOTEMPTY: i32 = 39;
const ETIMEDOUT: i32 = 110;
const EDQUOT: i32 = 122;

/// The most telling line of standard error: the tool's own summary
/// (`rbd: …`, `Error …`, `[errno …]`) rather than librbd's debug lines,
/// plus the hint line of the watchers error.
fn summary(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let own = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("rbd:") || l.starts_with("Error ") || l.starts_with("[errno"));
    match own.or(lines.last()) {
        Some(line) => (*line).to_owned(),
        None => "no error message".to_owned(),
    }
}

/// The first lines of a crash dump that say what went wrong (`terminate
/// called after …`, `what(): …`), not the event log after them.
fn crash_reason(stderr: &str) -> String {
    let reason: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("***") && !l.starts_with("---"))
        .filter(|l| !l.is_empty())
        .take(2)
        .collect();
    if reason.is_empty() {
        "no message".to_owned()
    } else {
        reason.join(" ")
    }
}

/// Classifies a command that exited non-zero. `what` says what was being
/// done (`rbd rm volumes/volume-…`); it starts the message.
pub(crate) fn classify(what: &str, output: &Output) -> CephError {
    let stderr = output.stderr.as_str();
    let has = |phrase: &str| stderr.contains(phrase);
    let detail = summary(stderr);
    let message = |reason: &str| {
        if reason.is_empty() {
            format!("{what}: {detail}")
        } else {
            format!("{what}: {reason}: {detail}")
        }
    };
    let code = output.code;

    // Killed by a signal (`code` is `-signal`): whatever it printed is a
    // crash dump, not an errno message, so nothing below applies.
    if code < 0 {
        return CephError::new(
            CephErrorKind::Crashed,
            format!(
                "{what}: the tool crashed (signal {}): {}",
                -code,
                crash_reason(stderr)
            ),
        );
    }
    // Authentication refusals first: `ceph` reports them as "(error
    // connecting to the cluster)" too, but they are not transient.
    if matches!(code, EPERM | EACCES) && (has("not permitted") || has("ermission denied"))
        || has("(1) Operation not permitted")
        || has("(13) Permission denied")
        || has("[errno 1] ")
        || has("[errno 13] ")
    {
        return CephError::new(
            CephErrorKind::PermissionDenied,
            message("permission denied"),
        );
    }
    if has("no keyring found") {
        return CephError::new(
            CephErrorKind::Unreachable,
            message("cannot connect to the cluster: no keyring found for the user"),
        );
    }
    if has("couldn't connect to the cluster")
        || has("error connecting to the cluster")
        || has("unable to open config file")
        || has("authenticate timed out")
    {
        return CephError::new(
            CephErrorKind::Unreachable,
            message("cannot connect to the cluster"),
        );
    }
    // Before ENOENT: a delete that failed for lack of space may end with an
    // unrelated ENOENT ("delete error: (2) No such file or directory").
    if matches!(code, ENOSPC | EDQUOT)
        || has("(28) No space left")
        || has("(122) Disk quota exceeded")
        || has("No space left on device")
    {
        return CephError::new(CephErrorKind::NoSpace, message("no space left in the pool"));
    }
    if code == ETIMEDOUT || has("(110) Connection timed out") || has("[errno 110]") {
        return CephError::new(CephErrorKind::TimedOut, message("timed out"));
    }
    if has("error opening pool") || has("unrecognized pool") {
        return CephError::new(
            CephErrorKind::PoolMissing,
            message("the pool does not exist"),
        );
    }
    let kind = match code {
        ENOENT => CephErrorKind::NotFound,
        EEXIST => CephErrorKind::Exists,
        EBUSY => CephErrorKind::Busy,
        ENOTEMPTY => CephErrorKind::HasSnapshots,
        EINVAL => CephErrorKind::InvalidArgument,
        _ if has("still has watchers") => CephErrorKind::Busy,
        _ if has("image has snapshots") => CephErrorKind::HasSnapshots,
        _ if has("(2) No such file or directory") => CephErrorKind::NotFound,
        _ => CephErrorKind::Other,
    };
    let mut error = CephError::new(kind, message(""));
    if kind == CephErrorKind::Busy && has("still has watchers") {
        error.message = format!(
            "{what}: the image is still open by a client (it has watchers; an attached \
             volume, or a crashed client for 30 s)"
        );
    }
    error
}

impl From<CephError> for DriverError {
    fn from(e: CephError) -> Self {
        match e.kind {
            CephErrorKind::Unreachable
            | CephErrorKind::TimedOut
            | CephErrorKind::PermissionDenied
            | CephErrorKind::PoolMissing
            | CephErrorKind::ToolMissing => DriverError::Unavailable(e.message),
            CephErrorKind::NotFound => DriverError::NotFound(e.message),
            CephErrorKind::Busy | CephErrorKind::HasSnapshots => DriverError::Busy(e.message),
            CephErrorKind::NoSpace => DriverError::NoSpace(e.message),
            CephErrorKind::Exists
            | CephErrorKind::InvalidArgument
            | CephErrorKind::Crashed
            | CephErrorKind::Other => DriverError::Backend(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: i32, stderr: &str) -> CephError {
        classify("rbd op", &Output::failed(code, stderr))
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("fixtures/", $name))
        };
    }

    #[test]
    fn classifies_real_rbd_errors_by_errno() {
        use CephErrorKind::*;
        for (code, stderr, kind) in [
            (2, fixture!("stderr-info-missing.txt"), NotFound),
            (2, fixture!("stderr-snap-rm-missing.txt"), NotFound),
            (2, fixture!("stderr-unprotect-missing.txt"), NotFound),
            (17, fixture!("stderr-create-exists.txt"), Exists),
            (16, fixture!("stderr-protect-protected.txt"), Busy),
            (16, fixture!("stderr-unprotect-children.txt"), Busy),
            (16, fixture!("stderr-rm-watchers.txt"), Busy),
            (39, fixture!("stderr-rm-has-snapshots.txt"), HasSnapshots),
            (22, fixture!("stderr-resize-shrink.txt"), InvalidArgument),
            (
                22,
                fixture!("stderr-unprotect-unprotected.txt"),
                InvalidArgument,
            ),
            (2, fixture!("stderr-pool-missing.txt"), PoolMissing),
            (
                1,
                fixture!("stderr-ls-permission-denied.txt"),
                PermissionDenied,
            ),
            (2, fixture!("stderr-no-keyring.txt"), Unreachable),
            (1, fixture!("stderr-ceph-no-keyring.txt"), Unreachable),
            (110, fixture!("stderr-unreachable.txt"), Unreachable),
            (1, fixture!("stderr-ceph-unreachable.txt"), Unreachable),
            (1, fixture!("stderr-conf-missing.txt"), Unreachable),
            (110, fixture!("stderr-create-pool-full.txt"), TimedOut),
            (5, "something odd", Other),
        ] {
            assert_eq!(failed(code, stderr).kind, kind, "{stderr}");
        }
    }

    #[test]
    fn a_tool_killed_by_a_signal_is_a_crash_whatever_its_dump_says() {
        // Ceph 16's `rbd` aborting in librados's io_context_pool (seen in
        // CI): the dump says "Invalid argument", which is not EINVAL.
        let e = failed(-6, fixture!("stderr-du-abort.txt"));
        assert_eq!(e.kind, CephErrorKind::Crashed);
        assert_eq!(
            e.message,
            "rbd op: the tool crashed (signal 6): terminate called after throwing an instance \
             of 'std::system_error' what():  Invalid argument"
        );
        assert!(matches!(DriverError::from(e), DriverError::Backend(_)));
    }

    #[test]
    fn classifies_space_and_cephx_errors_from_their_text() {
        use CephErrorKind::*;
        // `rbd rm` on a pool over quota: the trash move fails with EDQUOT,
        // then the tool reports an unrelated ENOENT; it must not read as
        // "already deleted".
        let rm_over_quota = "librbd::trash::MoveRequest: handle_trash_add: failed to add image \
                             to trash: (122) Disk quota exceeded\nRemoving image: 0% \
                             complete...failed.\nrbd: delete error: (2) No such file or directory\n";
        assert_eq!(failed(2, rm_over_quota).kind, NoSpace);
        assert_eq!(
            failed(28, "rbd: create error: (28) No space left on device").kind,
            NoSpace
        );
        assert_eq!(
            failed(
                1,
                "[errno 13] RADOS permission denied (error connecting to the cluster)"
            )
            .kind,
            PermissionDenied
        );
        assert_eq!(
            failed(1, "Error ENOENT: unrecognized pool 'nopool'").kind,
            PoolMissing
        );
    }

    #[test]
    fn messages_name_the_operation_and_the_tools_summary() {
        let e = failed(1, fixture!("stderr-ls-permission-denied.txt"));
        assert_eq!(
            e.message,
            "rbd op: permission denied: rbd: listing images failed: (1) Operation not permitted"
        );
        let e = failed(16, fixture!("stderr-rm-watchers.txt"));
        assert!(
            e.message.contains("still open by a client"),
            "{}",
            e.message
        );
        let e = failed(110, fixture!("stderr-unreachable.txt"));
        assert_eq!(
            e.message,
            "rbd op: cannot connect to the cluster: rbd: listing images failed: (110) Connection \
             timed out"
        );
        assert!(failed(16, fixture!("stderr-protect-protected.txt")).says("already protected"));
    }

    #[test]
    fn maps_kinds_to_driver_errors() {
        let cases = [
            (CephErrorKind::Unreachable, "Unavailable"),
            (CephErrorKind::TimedOut, "Unavailable"),
            (CephErrorKind::PermissionDenied, "Unavailable"),
            (CephErrorKind::PoolMissing, "Unavailable"),
            (CephErrorKind::ToolMissing, "Unavailable"),
            (CephErrorKind::NotFound, "NotFound"),
            (CephErrorKind::Busy, "Busy"),
            (CephErrorKind::HasSnapshots, "Busy"),
            (CephErrorKind::NoSpace, "NoSpace"),
            (CephErrorKind::Exists, "Backend"),
            (CephErrorKind::InvalidArgument, "Backend"),
            (CephErrorKind::Other, "Backend"),
        ];
        for (kind, variant) in cases {
            let e: DriverError = CephError::new(kind, "m").into();
            assert!(format!("{e:?}").starts_with(variant), "{kind:?} -> {e:?}");
        }
    }
}
