//! The fuzz corpus (`fuzz/corpus/TARGET/`, seeded from the tests and grown by fuzzing
//! runs, each finding kept) replayed through the targets' bodies on stable Rust: an
//! input that once crashed a target fails this test if it crashes again.

use std::path::Path;

#[test]
fn every_corpus_input_runs_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in fuzzing::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the corpus of {name} at {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "the corpus of {name} is empty");
        for input in inputs {
            // A fuzzing run in progress may remove an input it has reduced.
            let Ok(data) = std::fs::read(&input) else {
                continue;
            };
            target(&data);
        }
    }
}
