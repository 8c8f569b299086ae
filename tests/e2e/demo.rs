//! `clearway demo`, the intake benchmark: a short run on the embedded
//! default, with a warm-up, reports what it drove and every workflow done.

use super::support::clearway;

/// The number after `prefix` on the line starting with `line`.
fn figure(out: &str, line: &str, prefix: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line:?} line in:\n{out}"));
    let rest = &l[l
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {l:?}"))
        + prefix.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in {l:?}"))
}

#[test]
fn a_short_demo_with_a_warm_up_accounts_for_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = clearway(dir.path())
        .args(["demo", "--rate", "100", "--seconds", "2", "--warmup", "1"])
        .args(["--accounts", "10", "--connections", "4"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let accepted = figure(&stdout, "accepted:", "accepted:");
    let rejected = figure(&stdout, "accepted:", "rejected ");
    let failed = figure(&stdout, "accepted:", "failed ");
    // The measured seconds alone: 100 orders/s for 2 s, none failed.
    assert_eq!(accepted + rejected, 200, "{stdout}");
    assert_eq!(failed, 0, "{stdout}");
    assert!(accepted > 0, "{stdout}");
    // The warm-up's second apart: 100 orders, none failed.
    assert_eq!(figure(&stdout, "warm-up:", "warm-up:"), 1, "{stdout}");
    let warm_accepted = figure(&stdout, "warm-up:", "s, ");
    let warm_rejected = figure(&stdout, "warm-up:", "accepted, ");
    assert_eq!(warm_accepted + warm_rejected, 100, "{stdout}");
    assert_eq!(figure(&stdout, "warm-up:", "rejected, "), 0, "{stdout}");

    // Every accepted order's workflow (warm-up included) ran to the end,
    // and the demo's own deposits with them.
    let completed = figure(&stdout, "workflows:", "workflows:");
    let expected = figure(&stdout, "workflows:", " of ");
    assert_eq!(completed, expected, "{stdout}");
    // 10 accounts funded with two deposits each, then the orders.
    assert_eq!(expected, 20 + warm_accepted + accepted, "{stdout}");
}
