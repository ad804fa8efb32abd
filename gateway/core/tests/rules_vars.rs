//! The operator's vars (`gateway_core::config`), by the rules an operator
//! meets: which `ALLOWED_ORIGINS` entries are origins, what an error quotes
//! of a bad value, and what a debug print shows of the producer secrets.

use gateway_core::config::{AllowedOrigins, Config, ConfigError};

fn vars<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        list.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// An origin is `scheme://host[:port]`: the scheme starts with a letter and
/// holds only letters, digits, `+`, `-` and `.`; an IPv6 host keeps its
/// colons inside brackets, with or without a port.
#[test]
fn allowed_origins_entries_are_browser_origins() {
    for ok in [
        "https://app.example.com",
        "https://app.example.com:8443",
        "capacitor://localhost",
        "x-app+v1.2://host",
        "https://[::1]",
        "http://[::1]:8080",
    ] {
        assert!(
            matches!(AllowedOrigins::parse(ok), Ok(AllowedOrigins::List(_))),
            "{ok}"
        );
    }
    for bad in [
        "1app://host",
        "ht_tp://host",
        "https://host:",
        "https://host:123456",
        "https://host/path",
        "https://app example.com",
        "https://app\u{7f}.example.com",
        "https://",
        "app.example.com",
    ] {
        let e = AllowedOrigins::parse(bad).unwrap_err();
        assert!(matches!(e, ConfigError::Origins { .. }), "{bad}");
        assert!(
            e.to_string()
                .contains(&format!("entry {bad:?} is not an origin")),
            "{e}"
        );
    }
}

/// A refusal quotes the operator's value so they can find it, cut to its
/// first 40 characters with an ellipsis beyond that.
#[test]
fn a_bad_value_is_quoted_up_to_40_characters() {
    let e = Config::from_vars(vars(&[("PING_INTERVAL_MS", "30 s")])).unwrap_err();
    assert!(
        e.to_string().contains(r#"PING_INTERVAL_MS is "30 s""#),
        "{e}"
    );
    let exactly_40 = "9".repeat(40);
    let e = Config::from_vars(vars(&[("MAX_SOCKETS_PER_JOB", &exactly_40)])).unwrap_err();
    assert!(e.to_string().contains(&format!("{exactly_40:?}")), "{e}");
    let long = format!("{}{}", "9".repeat(40), "x".repeat(10));
    let e = Config::from_vars(vars(&[("MAX_SOCKETS_PER_JOB", &long)])).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&format!("\"{}…\"", "9".repeat(40))), "{text}");
    assert!(!text.contains('x'), "{text}");
    let entry = format!("https://{}/", "a".repeat(60));
    let e = AllowedOrigins::parse(&entry).unwrap_err().to_string();
    assert!(
        e.contains(&format!("\"https://{}…\"", "a".repeat(32))),
        "{e}"
    );
}

/// The producer secrets are kept as digests; a debug print says which are
/// set and nothing of their value.
#[test]
fn a_debug_print_of_the_producer_secrets_shows_only_which_are_set() {
    let secret = "producer-secret-value-0123456789";
    let config = Config::from_vars(vars(&[("PRODUCER_SECRET", secret)])).unwrap();
    let text = format!("{:?}", config.producer);
    assert_eq!(text, "ProducerSecrets { current: true, next: false }");
    assert!(!format!("{config:?}").contains(secret));
}
