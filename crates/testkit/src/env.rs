//! The rule every suite that needs something outside the repository
//! follows: off CI it skips with a message saying what is missing; under
//! `CI=true` a missing service, tool or privilege fails the test.

/// A flag variable set to `1` or `true`.
pub fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "true" || v == "1")
}

/// `CI=true` (or `1`): missing prerequisites fail instead of skipping.
pub fn in_ci() -> bool {
    flag("CI")
}

/// Whether the system tests (loop devices, LVM, tgtd, Ceph) were asked
/// for: `CLINKER_SYSTEM_TESTS=1` or CI. Prints the skip otherwise.
pub fn system_tests(test: &str) -> bool {
    let on = flag("CLINKER_SYSTEM_TESTS") || in_ci();
    if !on {
        eprintln!("skipping system test {test}: set CLINKER_SYSTEM_TESTS=1 (or CI=true) to run it");
    }
    on
}

/// Skips `test` because of `reason` (printing `hint`, where to get what is
/// missing), or under CI fails it. Returns false, so a guard reads
/// `if !ready { return unmet(…) }`.
pub fn unmet(test: &str, reason: &str, hint: &str) -> bool {
    assert!(
        !in_ci(),
        "{test} cannot run under CI=true: {reason} ({hint})"
    );
    eprintln!("skipping {test}: {reason} ({hint})");
    false
}

/// Finds `program` in `PATH` and the sbin directories tools live in.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|p| p.is_file())
}
