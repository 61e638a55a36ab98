//! `deploy/screenshot.sh`, the README's stats page picture: run for real on its own lab (unique
//! LAB name, the binary under test), it must leave a PNG under 200 KB of lb1's page (the
//! script renders only once lb1's CSV shows web2 DOWN, and fails otherwise) and take down the
//! lab it started. The README's copy must exist, be a PNG and fit the same limit.

mod common;

use common::script_lab::{repo, run_logged};
use common::BIN;
use std::process::Command;
use std::time::Duration;
use testkit::{namespaces_with_prefix, require_root, require_tool, TempDir};

/// Width and height from a PNG's IHDR.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 24 || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

#[test]
fn the_readme_picture_is_small_and_a_real_png() {
    let png = std::fs::read(repo().join("docs/stats-page.png")).expect("docs/stats-page.png");
    let (w, h) = png_size(&png).expect("a PNG");
    assert!(png.len() < 200 * 1024, "{} bytes", png.len());
    assert!(w >= 800 && h >= 600, "{w}x{h}");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(
        readme.contains("](docs/stats-page.png)"),
        "the README shows it"
    );
}

#[test]
fn screenshot_script_renders_the_lab_page_with_a_server_down() {
    let test = "screenshot_script_renders_the_lab_page_with_a_server_down";
    if !require_root(test) || !require_tool(test, "chromium") || !require_tool(test, "nginx") {
        return;
    }
    let lab = format!("vshot{}", std::process::id());
    let out = TempDir::new("screenshot");
    let png_path = out.join("page.png");
    let mut cmd = Command::new(repo().join("deploy/screenshot.sh"));
    cmd.arg(&png_path)
        .env("LAB", &lab)
        .env("LAB_DIR", out.join("lab"))
        .env("VRRPLB_BIN", BIN)
        .env("LAB_NO_APT", "1");
    // Its trap takes the lab down, also when it is killed past the limit.
    let (ok, text) = run_logged(cmd, &out.join("script.log"), Duration::from_secs(240));
    let left = namespaces_with_prefix(&lab);
    if !left.is_empty() {
        // Clean up before failing: the lab this test named.
        let _ = Command::new(repo().join("deploy/lab.sh"))
            .arg("down")
            .env("LAB", &lab)
            .env("LAB_DIR", out.join("lab"))
            .status();
    }
    assert!(ok, "screenshot.sh failed:\n{text}");
    assert!(
        left.is_empty(),
        "the lab it started is still up: {left:?}\n{text}"
    );
    let png = std::fs::read(&png_path).expect("the PNG");
    let (w, h) = png_size(&png).expect("a PNG");
    assert!(
        png.len() < 200 * 1024 && w >= 800 && h >= 600,
        "{} bytes, {w}x{h}",
        png.len()
    );
    assert!(text.contains("web2 off the network"), "{text}");
    println!("screenshot.sh: {w}x{h}, {} bytes", png.len());
}
