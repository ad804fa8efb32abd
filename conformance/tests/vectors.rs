//! The committed vectors equal what the machine produces, and the Rust client
//! passes every one of them, replayed from the JSON as any other client would.

use conformance::{parse_input, Replay};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn committed() -> BTreeMap<String, String> {
    std::fs::read_dir(dir())
        .expect("conformance/vectors/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("a readable vector"),
            )
        })
        .collect()
}

#[test]
fn committed_vectors_are_fresh() {
    let generated: BTreeMap<String, String> = conformance::generate().into_iter().collect();
    let committed = committed();
    let regenerate = "regenerate with `cargo run -p conformance --bin generate-vectors` \
                      and commit conformance/vectors/";
    for name in generated.keys() {
        assert!(
            committed.contains_key(name),
            "{name} is missing: {regenerate}"
        );
    }
    for (name, text) in &committed {
        let fresh = generated
            .get(name)
            .unwrap_or_else(|| panic!("{name} is no longer generated: {regenerate}"));
        assert!(
            fresh == text,
            "{name} differs from the machine: {regenerate}"
        );
    }
}

#[test]
fn rust_client_passes_every_vector() {
    let vectors = committed();
    assert!(vectors.len() >= 20, "only {} vectors", vectors.len());
    for (name, text) in &vectors {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v["format"], 1, "{name}: unknown format");
        let random: Vec<f64> = v["random"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no random"))
            .iter()
            .map(|r| r.as_f64().unwrap_or_else(|| panic!("{name}: random {r}")))
            .collect();
        let mut client = Replay::new(&v["config"], &random);
        let steps = v["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no steps"));
        for (i, step) in steps.iter().enumerate() {
            let at = step["atMs"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}[{i}]: atMs"));
            let input = parse_input(&step["input"]).unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
            let did = client.step(at, input);
            let expect = &step["expect"];
            for key in expect.as_object().expect("expect is an object").keys() {
                assert_eq!(
                    did[key], expect[key],
                    "{name} step {i} (at {at} ms, input {}): `{key}` differs",
                    step["input"]
                );
            }
            check_meaning(name, i, at, expect);
        }
    }
}

/// Checks that hold for every vector whatever the machine says: what another
/// client's runner would check without comparing JSON.
fn check_meaning(name: &str, i: usize, at: u64, expect: &Value) {
    for action in expect["actions"].as_array().into_iter().flatten() {
        if action["type"] == "connect" {
            let url = url::Url::parse(action["url"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{name}[{i}]: connect url: {e}"));
            assert_eq!(url.path(), "/ws/progress", "{name}[{i}]");
            let query: serde_json::Map<String, Value> = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            assert_eq!(Value::Object(query), action["query"], "{name}[{i}]: query");
        }
    }
    let wait = &expect["wait"];
    if !wait.is_null() {
        let (min, max, delay) = (
            wait["minMs"].as_u64().unwrap_or(u64::MAX),
            wait["maxMs"].as_u64().unwrap_or(0),
            wait["delayMs"].as_u64().unwrap_or(u64::MAX),
        );
        assert!(min <= delay && delay <= max, "{name}[{i}]: wait {wait}");
        assert_eq!(
            expect["timerAtMs"],
            at + delay,
            "{name}[{i}]: timer vs wait"
        );
    }
}
