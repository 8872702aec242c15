//! Every committed fuzz input, run on stable: the seeds of each target
//! (`fuzz/seeds/TARGET`, real captures) and every input that ever crashed a
//! target (`fuzz/regressions/TARGET`, kept after the fix). A crash found by
//! `scripts/fuzz` is copied to `fuzz/regressions/TARGET/` and so becomes a
//! plain test here.

use std::path::Path;

#[test]
fn every_seed_and_past_crash_runs_through_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut ran = 0;
    for (target, run) in tinsel::fuzzing::TARGETS {
        let mut inputs = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable fuzz input folder").path();
                let bytes = std::fs::read(&path).expect("a readable fuzz input");
                // A panic here names the file, so it can be replayed with
                // `cargo fuzz run TARGET FILE`.
                println!("{target}: {}", path.display());
                run(&bytes);
                inputs += 1;
            }
        }
        assert!(
            inputs > 0,
            "fuzz target {target} has no seeds in fuzz/seeds/{target}"
        );
        ran += inputs;
    }
    let targets = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .expect("fuzz/fuzz_targets exists")
        .count();
    assert_eq!(
        targets,
        tinsel::fuzzing::TARGETS.len(),
        "every file in fuzz/fuzz_targets has its entry in tinsel::fuzzing::TARGETS"
    );
    println!("{ran} fuzz inputs ran");
}
