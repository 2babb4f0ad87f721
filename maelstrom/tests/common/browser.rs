//! Finding the headless browser for the browser tests (`report_browser.rs`, `web_browser.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's `chromium` (or `$CHROMIUM`, or another Chromium on `PATH`). `None` means the test
/// should skip, which it may only do locally: with `MURMUR_TEST_REQUIRE_BROWSER` set (`.ci/run`
/// installs Chromium and sets it) a missing browser fails the test instead.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("MURMUR_TEST_REQUIRE_BROWSER").is_none(),
            "MURMUR_TEST_REQUIRE_BROWSER is set but no chromium was found (install Debian's `chromium`)"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium; or set CHROMIUM)");
    }
    found
}

/// Headless Chromium with the flags both browser tests use and its own profile folder `profile`;
/// callers add their own flags and the URL.
pub fn headless(browser: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}
