//! Writes `docs/openapi.json` and `docs/asyncapi.json` from the wire types of
//! `gateway_core::api`. Run from anywhere in the repository:
//! `cargo run -p gateway-core --example api-docs`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for (name, text) in gateway_core::api::documents() {
        std::fs::write(docs.join(name), text)?;
        println!("wrote docs/{name}");
    }
    Ok(())
}
