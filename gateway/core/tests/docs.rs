//! Keeps the app developers' close-code table in `docs/PROTOCOL.md` equal to
//! the core's [`gateway_core::close_code::TABLE`] and its actions.

use gateway_core::close_code::TABLE;
use gateway_core::{ClientAction, CloseCode};

fn action_word(code: CloseCode) -> String {
    match code.action() {
        ClientAction::Done => "done".into(),
        ClientAction::Stop => "stop".into(),
        ClientAction::Reauthenticate => "re-authenticate".into(),
        ClientAction::Reconnect { min_delay } => {
            format!("reconnect (min {} ms + backoff)", min_delay.0)
        }
    }
}

/// The table as it must appear in the doc, one line per code.
fn expected_rows() -> Vec<String> {
    TABLE
        .iter()
        .map(|r| {
            format!(
                "| {} | {} | {} | {} |",
                r.code.as_u16(),
                r.sent_when,
                r.client_does,
                action_word(r.code)
            )
        })
        .collect()
}

#[test]
fn protocol_doc_close_code_table_matches_the_core() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROTOCOL.md"
    ))
    .expect("docs/PROTOCOL.md exists");
    let start = doc
        .find("<!-- close-codes:start -->")
        .expect("start marker");
    let end = doc.find("<!-- close-codes:end -->").expect("end marker");
    let rows: Vec<String> = doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    let expected = expected_rows();
    assert_eq!(
        rows,
        expected,
        "regenerate the table with:\n{}",
        expected.join("\n")
    );
}
