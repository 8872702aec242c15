//! The command as a user meets it. Also makes `cargo test --workspace --no-run`
//! build the binary, which scripts/test then runs.

use std::process::Command;

#[test]
fn an_argument_is_refused_with_the_command_to_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_sitebuild"))
        .arg("--watch")
        .output()
        .expect("run sitebuild");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"--watch\""), "{err}");
    assert!(err.contains("cargo run --release -p sitebuild"), "{err}");
}
