//! The committed API documents are what the code generates.

use std::path::Path;

#[test]
fn committed_api_documents_match_the_types() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for (name, text) in gateway_core::api::documents() {
        let committed = std::fs::read_to_string(docs.join(name)).unwrap_or_default();
        assert!(
            committed == text,
            "docs/{name} differs from what gateway/core/src/api.rs generates; \
             regenerate it with `cargo run -p gateway-core --example api-docs` and commit it"
        );
    }
}
