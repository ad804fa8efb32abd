//! Writes every conformance vector to `conformance/vectors/` (and removes
//! vectors no script produces any more): `cargo run -p conformance --bin generate-vectors`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    std::fs::create_dir_all(&dir)?;
    let vectors = conformance::generate();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json") && !vectors.iter().any(|(n, _)| n == name) {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, text) in &vectors {
        std::fs::write(dir.join(name), text)?;
    }
    println!("wrote {} vectors to conformance/vectors/", vectors.len());
    Ok(())
}
