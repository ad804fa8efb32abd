//! Rules of subscriber tokens (issue 11 part 4): the self-authenticating
//! format the edge checks (round trip, every field covered by the MAC, expiry
//! to the millisecond, key rotation), the session cap of in-band refreshes,
//! the operator's token vars, and the edge's one decision that refuses a bad
//! token before any room is touched, with one answer for all.

use gateway_core::config::{
    Config, MAX_SESSION_MS, PRODUCER_SECRET, TOKEN_SECRET, TOKEN_SECRET_PREVIOUS,
};
use gateway_core::http::{self, Decision, Reply, RequestParts, RoomRequest, ToRoom};
use gateway_core::token::{
    BadToken, Claims, Minter, Token, TokenHash, TokenKey, TokenKeys, TokenSet, Verdict,
    DEFAULT_MAX_SESSION, MAX_TOKEN_LEN,
};
use gateway_core::Millis;

const T0: Millis = Millis(1_763_000_000_000);
const JOB: &str = "job-1";

fn key(secret: &str) -> TokenKey {
    TokenKey::derive("test", secret)
}

fn keys(current: &str, previous: Option<&str>) -> TokenKeys {
    TokenKeys {
        current: key(current),
        previous: previous.map(key),
    }
}

fn mint(k: &TokenKey, exp: Millis, start: Millis) -> Token {
    k.mint(JOB, exp, start, [0xab; 16])
}

// --- format and MAC ---------------------------------------------------------

#[test]
fn a_token_round_trips_and_says_its_expiry_and_session_start() {
    let k = keys("a", None);
    let exp = T0.plus(Millis::from_hours(2));
    let t = mint(&k.current, exp, T0);
    assert_eq!(
        k.verify(t.expose(), JOB, T0),
        Ok(Claims {
            expires_at: exp,
            session_start: T0,
        })
    );
    let text = t.expose();
    assert!(text.starts_with("v1."), "{text}");
    assert_eq!(text.split('.').count(), 5);
    // ASCII and URL-safe: nothing to escape in a query or a header.
    assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
}

#[test]
fn the_longest_token_is_max_token_len() {
    let t = key("a").mint(JOB, Millis(u64::MAX), Millis(u64::MAX), [0xff; 16]);
    assert_eq!(t.expose().len(), MAX_TOKEN_LEN);
    assert_eq!(MAX_TOKEN_LEN, 142);
}

/// Replaces field `i` (0-based, of the 5 dot-separated fields).
fn with_field(token: &str, i: usize, value: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = value;
    parts.join(".")
}

#[test]
fn changing_any_signed_field_is_refused() {
    let k = keys("a", None);
    let exp = T0.plus(Millis::from_hours(2));
    let t = mint(&k.current, exp, T0);
    let text = t.expose();
    // Another job.
    assert_eq!(k.verify(text, "job-2", T0), Err(BadToken));
    // A later expiry, an earlier session start, another nonce, another MAC.
    let later = (exp.0 + 1).to_string();
    let earlier = (T0.0 - 1).to_string();
    let nonce = "cd".repeat(16);
    let mac = text.rsplit('.').next().unwrap();
    let mut flipped = mac.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for forged in [
        with_field(text, 1, &later),
        with_field(text, 2, &earlier),
        with_field(text, 3, &nonce),
        with_field(text, 4, &flipped),
    ] {
        assert_eq!(k.verify(&forged, JOB, T0), Err(BadToken), "{forged}");
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let k = keys("a", None);
    let good = mint(&k.current, T0.plus(Millis::from_hours(1)), T0);
    let text = good.expose();
    let exp = text.split('.').nth(1).unwrap();
    for bad in [
        String::new(),
        "not-a-token".to_owned(),
        uuid_like(),
        with_field(text, 0, "v2"),
        with_field(text, 1, &format!("0{exp}")),
        with_field(text, 1, &format!("+{exp}")),
        with_field(text, 3, &"AB".repeat(16)),
        with_field(text, 3, &"ab".repeat(15)),
        with_field(text, 4, &text.rsplit('.').next().unwrap().to_uppercase()),
        format!("{text}.x"),
        format!("{text}{}", "0".repeat(MAX_TOKEN_LEN)),
    ] {
        assert_eq!(k.verify(&bad, JOB, T0), Err(BadToken), "{bad:?}");
    }
}

fn uuid_like() -> String {
    "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7".to_owned()
}

#[test]
fn a_token_is_valid_until_one_ms_before_its_expiry() {
    let k = keys("a", None);
    let exp = T0.plus(Millis::from_hours(2));
    let t = mint(&k.current, exp, T0);
    assert!(k.verify(t.expose(), JOB, exp.minus(Millis(1))).is_ok());
    assert_eq!(k.verify(t.expose(), JOB, exp), Err(BadToken));
    assert_eq!(
        k.verify(t.expose(), JOB, exp.plus(Millis(1))),
        Err(BadToken)
    );
}

#[test]
fn the_previous_key_still_verifies_an_unknown_key_never() {
    let exp = T0.plus(Millis::from_hours(2));
    let old = mint(&key("old"), exp, T0);
    let rotated = keys("new", Some("old"));
    assert!(rotated.verify(old.expose(), JOB, T0).is_ok());
    // Signing is with the current key only: verified without the previous.
    let new = mint(&rotated.current, exp, T0);
    assert!(keys("new", None).verify(new.expose(), JOB, T0).is_ok());
    // After the rotation ends, the old key's tokens are refused.
    assert_eq!(
        keys("new", None).verify(old.expose(), JOB, T0),
        Err(BadToken)
    );
    let stranger = mint(&key("stranger"), exp, T0);
    assert_eq!(rotated.verify(stranger.expose(), JOB, T0), Err(BadToken));
}

#[test]
fn neither_a_token_nor_a_key_shows_in_debug() {
    let k = key("super-secret");
    let t = mint(&k, T0.plus(Millis(1)), T0);
    let shown = format!("{t:?} {k:?} {:?}", keys("super-secret", Some("p")));
    assert!(!shown.contains(t.expose()), "{shown}");
    assert!(!shown.contains("super-secret"), "{shown}");
    let mac = t.expose().rsplit('.').next().unwrap();
    assert!(!shown.contains(mac), "{shown}");
    let config =
        Config::from_vars(|n| (n == TOKEN_SECRET).then(|| "tok-s3cret".to_owned())).unwrap();
    assert!(!format!("{config:?}").contains("tok-s3cret"));
    // What a log shows instead: that a key or token is there, redacted, and
    // of a token's SHA-256 (all the room keeps) its first 4 bytes only,
    // enough to tell tokens apart.
    assert!(format!("{k:?}").contains("redacted"), "{k:?}");
    assert!(format!("{t:?}").contains("redacted"), "{t:?}");
    let hash = TokenHash::of(t.expose());
    let hex = hex::encode(hash.0);
    assert_eq!(format!("{hash:?}"), format!("TokenHash({}…)", &hex[..8]));
}

/// The MAC of a token of the v1 format: HMAC-SHA256 under the key of
/// `v1|job|expiresAt|sessionStart|nonce` (a token minted by one version of
/// the gateway verifies in the next), lower-case hex.
fn v1_mac(key: &[u8], job: &str, exp: u64, start: u64, nonce: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("v1|{job}|{exp}|{start}|{nonce}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn a_token_is_its_fields_and_their_hmac_sha256() {
    let nonce = "ab".repeat(16);
    let exp = T0.plus(Millis(1)).0;
    let want = format!(
        "v1.{exp}.{}.{nonce}.{}",
        T0.0,
        v1_mac(&[0x5a; 32], JOB, exp, T0.0, &nonce)
    );
    assert_eq!(
        TokenKey::TEST
            .mint(JOB, Millis(exp), T0, [0xab; 16])
            .expose(),
        want
    );
}

#[test]
fn a_nonce_of_other_than_32_lower_hex_digits_is_refused_even_correctly_signed() {
    let k = TokenKeys {
        current: TokenKey::TEST,
        previous: None,
    };
    let exp = T0.plus(Millis(1)).0;
    let signed = |nonce: &str| {
        format!(
            "v1.{exp}.{}.{nonce}.{}",
            T0.0,
            v1_mac(&[0x5a; 32], JOB, exp, T0.0, nonce)
        )
    };
    assert!(k.verify(&signed(&"ab".repeat(16)), JOB, T0).is_ok());
    for nonce in [
        "ab".repeat(15),
        "ab".repeat(17),
        "a".repeat(31),
        "AB".repeat(16),
    ] {
        assert_eq!(k.verify(&signed(&nonce), JOB, T0), Err(BadToken), "{nonce}");
    }
}

#[test]
fn a_token_of_exactly_142_characters_verifies() {
    let k = keys("a", None);
    let t = key("a").mint(JOB, Millis(u64::MAX), Millis(u64::MAX - 1), [0xff; 16]);
    assert_eq!(t.expose().len(), 142);
    assert!(k.verify(t.expose(), JOB, T0).is_ok());
    // One more character anywhere is refused (here a leading zero).
    let longer = t.expose().replacen("v1.", "v1.0", 1);
    assert_eq!(longer.len(), 143);
    assert_eq!(k.verify(&longer, JOB, T0), Err(BadToken));
}

#[test]
fn a_previous_key_equal_to_the_current_one_still_verifies() {
    // An operator who sets TOKEN_SECRET_PREVIOUS to the current secret (a
    // rotation begun and undone) locks nobody out.
    let t = mint(&key("same"), T0.plus(Millis(1)), T0);
    assert!(keys("same", Some("same"))
        .verify(t.expose(), JOB, T0)
        .is_ok());
}

// --- the session cap ----------------------------------------------------------

fn minter(max_session: Millis) -> Minter<'static> {
    Minter {
        key: &TokenKey::TEST,
        job_id: JOB,
        max_session,
    }
}

#[test]
fn a_refresh_keeps_the_session_start_and_stops_at_its_cap() {
    let ttl = Millis::from_hours(2);
    let m = minter(DEFAULT_MAX_SESSION);
    let mut set = TokenSet::new(ttl);
    set.start_session(&m, T0, [1; 16]);
    let end = T0.plus(DEFAULT_MAX_SESSION);
    // One ms more than a whole ttl before the end: a full token.
    let before = end.minus(ttl).minus(Millis(1));
    let (t, exp) = set.refresh(&m, before, [2; 16]).unwrap();
    assert_eq!(exp, before.plus(ttl));
    let claims = TokenKeys {
        current: TokenKey::TEST,
        previous: None,
    }
    .verify(t.expose(), JOB, before)
    .unwrap();
    assert_eq!(
        claims.session_start, T0,
        "a refresh keeps the session start"
    );
    // The refresh at the limit: capped exactly at the end.
    let (_, exp) = set
        .refresh(&m, end.minus(ttl).plus(Millis(1)), [3; 16])
        .unwrap();
    assert_eq!(exp, end);
    // One over: nothing later than the end is possible; no refresh, none due.
    assert_eq!(
        set.refresh(&m, end.minus(Millis::from_mins(10)), [4; 16]),
        None
    );
    assert_eq!(set.refresh_due_at(DEFAULT_MAX_SESSION), None);
    // A session one ms longer allows one more (1 ms) extension.
    let longer = minter(DEFAULT_MAX_SESSION.plus(Millis(1)));
    let (_, exp) = set.refresh(&longer, end.minus(Millis(5)), [5; 16]).unwrap();
    assert_eq!(exp, end.plus(Millis(1)));
}

#[test]
fn after_a_refresh_the_previous_token_is_valid_until_its_own_expiry() {
    // A subscriber that reconnects with the token it was given before the
    // refresh reached it is not locked out; the room keeps two of the
    // lineage, so the one before those goes.
    let m = minter(DEFAULT_MAX_SESSION);
    let mut set = TokenSet::new(Millis::from_hours(1));
    let (t1, e1) = set.start_session(&m, T0, [1; 16]);
    let at = T0.plus(Millis::from_mins(55));
    let (t2, e2) = set.refresh(&m, at, [2; 16]).unwrap();
    assert_eq!(set.verify(t1.expose(), at), Verdict::Valid(e1));
    assert_eq!(set.verify(t2.expose(), at), Verdict::Valid(e2));
    assert_eq!(set.verify(t1.expose(), e1), Verdict::Invalid, "expired");
    let later = at.plus(Millis::from_mins(55));
    let (t3, e3) = set.refresh(&m, later, [3; 16]).unwrap();
    assert_eq!(set.verify(t2.expose(), later), Verdict::Valid(e2));
    assert_eq!(set.verify(t3.expose(), later), Verdict::Valid(e3));
    assert_eq!(set.verify(t1.expose(), later), Verdict::Invalid);
}

#[test]
fn a_refresh_is_due_min_10_min_and_half_the_ttl_before_the_newest_expires() {
    let m = minter(DEFAULT_MAX_SESSION);
    for (ttl_mins, margin_mins) in [(2, 1), (10, 5), (20, 10), (21, 10), (120, 10)] {
        let mut set = TokenSet::new(Millis::from_mins(ttl_mins));
        let (_, exp) = set.start_session(&m, T0, [1; 16]);
        assert_eq!(
            set.refresh_due_at(DEFAULT_MAX_SESSION),
            Some(exp.minus(Millis::from_mins(margin_mins))),
            "ttl {ttl_mins} min"
        );
    }
}

#[test]
fn a_set_is_empty_until_a_token_is_issued_and_again_after_a_revoke() {
    let m = minter(DEFAULT_MAX_SESSION);
    let mut set = TokenSet::new(Millis::from_hours(1));
    assert!(set.is_empty());
    set.start_session(&m, T0, [1; 16]);
    assert!(!set.is_empty());
    set.revoke_all();
    assert!(set.is_empty());
    // A token the producer asked for after the revoke counts too.
    set.issue_for_producer(&m, T0, [2; 16]).unwrap();
    assert!(!set.is_empty());
}

#[test]
fn a_session_shorter_than_the_ttl_caps_the_creation_and_producer_tokens() {
    let m = minter(Millis::from_mins(30));
    let mut set = TokenSet::new(Millis::from_hours(2));
    let (_, exp) = set.start_session(&m, T0, [1; 16]);
    assert_eq!(exp, T0.plus(Millis::from_mins(30)));
    let at = T0.plus(Millis::from_mins(5));
    let (t, exp) = set.issue_for_producer(&m, at, [2; 16]).unwrap();
    assert_eq!(exp, at.plus(Millis::from_mins(30)));
    let claims = TokenKeys {
        current: TokenKey::TEST,
        previous: None,
    }
    .verify(t.expose(), JOB, at)
    .unwrap();
    assert_eq!(
        claims.session_start, at,
        "a producer token starts a session"
    );
}

// --- the operator's vars --------------------------------------------------------

fn config(vars: &[(&str, &str)]) -> Result<Config, gateway_core::config::ConfigError> {
    Config::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn max_session_ms_is_1_min_to_30_days_default_24_h() {
    assert_eq!(
        config(&[]).unwrap().room.max_session,
        Millis::from_hours(24)
    );
    for (v, ok) in [
        ("60000", Some(60_000)),
        ("59999", None),
        ("2592000000", Some(2_592_000_000)),
        ("2592000001", None),
        ("0", None),
        ("1h", None),
    ] {
        match (config(&[(MAX_SESSION_MS, v)]), ok) {
            (Ok(c), Some(ms)) => assert_eq!(c.room.max_session, Millis(ms)),
            (Err(e), None) => {
                let e = e.to_http();
                assert_eq!((e.status, e.code), (500, "misconfigured"));
                assert!(e.message.contains("MAX_SESSION_MS"), "{e}");
            }
            (got, want) => panic!("{v}: {got:?} vs {want:?}"),
        }
    }
}

#[test]
fn the_token_key_comes_from_token_secret_else_from_the_producer_secret() {
    let exp = T0.plus(Millis::from_hours(1));
    let derived = config(&[(PRODUCER_SECRET, "p1")]).unwrap();
    let keys = derived.tokens.unwrap();
    assert_eq!(
        Some(keys.current),
        derived.room.token_key,
        "the room signs with it"
    );
    let t = keys.current.mint(JOB, exp, T0, [1; 16]);
    // Without TOKEN_SECRET, rotating the producer secret invalidates tokens.
    let rotated = config(&[(PRODUCER_SECRET, "p2")]).unwrap().tokens.unwrap();
    assert_eq!(rotated.verify(t.expose(), JOB, T0), Err(BadToken));
    // With it, the producer secret no longer matters.
    let own = config(&[(PRODUCER_SECRET, "p1"), (TOKEN_SECRET, "t1")]).unwrap();
    let own_keys = own.tokens.unwrap();
    assert_ne!(own_keys.current, keys.current);
    let t = own_keys.current.mint(JOB, exp, T0, [1; 16]);
    let p_rotated = config(&[(PRODUCER_SECRET, "p2"), (TOKEN_SECRET, "t1")]).unwrap();
    assert!(p_rotated
        .tokens
        .unwrap()
        .verify(t.expose(), JOB, T0)
        .is_ok());
    // Rotating TOKEN_SECRET: the previous one verifies, the room signs with the new.
    let rotating = config(&[
        (PRODUCER_SECRET, "p2"),
        (TOKEN_SECRET, "t2"),
        (TOKEN_SECRET_PREVIOUS, "t1"),
    ])
    .unwrap();
    let rk = rotating.tokens.unwrap();
    assert!(rk.verify(t.expose(), JOB, T0).is_ok());
    assert_eq!(rotating.room.token_key, Some(rk.current));
    assert_ne!(rk.current, own_keys.current);
    // No secret at all: no key (no job can exist then), and the room signs
    // nothing (not with the tests' key either).
    assert_eq!(config(&[]).unwrap().tokens, None);
    assert_eq!(config(&[]).unwrap().room.token_key, None);
}

// --- the edge's decision ----------------------------------------------------------

fn edge_config() -> Config {
    config(&[(PRODUCER_SECRET, "p"), (TOKEN_SECRET, "t")]).unwrap()
}

fn good_token(c: &Config, job: &str) -> String {
    c.room
        .token_key
        .expect("a key")
        .mint(job, T0.plus(Millis::from_hours(1)), T0, [7; 16])
        .expose()
        .to_owned()
}

fn upgrade_parts(query: &str) -> RequestParts<'_> {
    RequestParts {
        method: "GET",
        path: "/ws/progress",
        query,
        upgrade: Some("websocket"),
        ..RequestParts::default()
    }
}

fn refusal(d: &Decision) -> (u16, String) {
    match d {
        Decision::Reply(Reply::Json { status, body, .. }) => (*status, body.clone()),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_forged_wrong_job_or_expired_token_is_the_same_401_on_every_subscriber_route() {
    let c = edge_config();
    let other = config(&[(PRODUCER_SECRET, "p"), (TOKEN_SECRET, "other")]).unwrap();
    let for_b = good_token(&c, "job-b");
    let forged = good_token(&other, JOB);
    let expired = c
        .room
        .token_key
        .expect("a key")
        .mint(JOB, T0, T0.minus(Millis(1)), [7; 16])
        .expose()
        .to_owned();
    let mut answers = Vec::new();
    for token in [
        forged.as_str(),
        for_b.as_str(),
        expired.as_str(),
        "x",
        uuid_like().as_str(),
    ] {
        let q = format!("jobId={JOB}&token={token}");
        answers.push(refusal(&http::decide(&upgrade_parts(&q), &c, T0)));
        let bearer = format!("Bearer {token}");
        for (method, path) in [
            ("GET", format!("/api/job-state/{JOB}")),
            ("POST", format!("/api/jobs/{JOB}/cancel")),
        ] {
            let parts = RequestParts {
                method,
                path: &path,
                authorization: Some(&bearer),
                ..RequestParts::default()
            };
            answers.push(refusal(&http::decide(&parts, &c, T0)));
        }
    }
    let want = (401, http::bad_token().body());
    assert!(
        want.1.contains("get a new one from your backend"),
        "{}",
        want.1
    );
    for a in &answers {
        assert_eq!(a, &want);
    }
    assert_eq!(answers.len(), 15);
}

#[test]
fn a_good_token_goes_to_its_jobs_room_with_what_the_edge_parsed() {
    let c = edge_config();
    let token = good_token(&c, JOB);
    let q = format!("jobId={JOB}&token={token}&clientId=phone&lastSeq=3");
    let Decision::ToRoom(ToRoom {
        job_id,
        request: RoomRequest::Upgrade { request },
        cors,
    }) = http::decide(&upgrade_parts(&q), &c, T0)
    else {
        panic!("not forwarded");
    };
    assert_eq!(
        (job_id.as_str(), request.token.as_str()),
        (JOB, token.as_str())
    );
    assert_eq!(request.client_id.as_deref(), Some("phone"));
    assert_eq!(cors.as_deref(), Some("*"));
    let bearer = format!("Bearer {token}");
    let path = format!("/api/jobs/{JOB}/cancel");
    let parts = RequestParts {
        method: "POST",
        path: &path,
        authorization: Some(&bearer),
        ..RequestParts::default()
    };
    assert!(matches!(
        http::decide(&parts, &c, T0),
        Decision::ToRoom(ToRoom { request: RoomRequest::Cancel { token: t }, .. }) if t == token
    ));
    // One ms before its expiry it still passes; at it, not.
    let at_end = T0.plus(Millis::from_hours(1));
    assert!(matches!(
        http::decide(&parts, &c, at_end.minus(Millis(1))),
        Decision::ToRoom(_)
    ));
    assert_eq!(refusal(&http::decide(&parts, &c, at_end)).0, 401);
}

#[test]
fn without_any_secret_every_subscriber_token_is_401() {
    let c = config(&[]).unwrap();
    // Well-formed and signed, with the tests' fixed key (a room without a
    // key signs nothing; before, it signed with this one).
    let token = mint(&TokenKey::TEST, T0.plus(Millis::from_hours(1)), T0);
    let q = format!("jobId={JOB}&token={}", token.expose());
    assert_eq!(refusal(&http::decide(&upgrade_parts(&q), &c, T0)).0, 401);
}

#[test]
fn refusals_at_the_edge_carry_the_cors_of_the_decision() {
    let c = config(&[
        (PRODUCER_SECRET, "p"),
        ("ALLOWED_ORIGINS", "https://app.example"),
    ])
    .unwrap();
    let q = format!("jobId={JOB}&token=forged");
    let parts = RequestParts {
        origin: Some("https://app.example"),
        ..upgrade_parts(&q)
    };
    let Decision::Reply(Reply::Json { status, cors, .. }) = http::decide(&parts, &c, T0) else {
        panic!()
    };
    assert_eq!(
        (status, cors.as_deref()),
        (401, Some("https://app.example"))
    );
    let token = good_token(&c, JOB);
    let q = format!("jobId={JOB}&token={token}");
    let parts = RequestParts {
        origin: Some("https://app.example"),
        ..upgrade_parts(&q)
    };
    let Decision::ToRoom(to) = http::decide(&parts, &c, T0) else {
        panic!()
    };
    assert_eq!(to.cors.as_deref(), Some("https://app.example"));
    // The room request survives the trip to the Durable Object.
    let back: ToRoom = serde_json::from_str(&serde_json::to_string(&to).unwrap()).unwrap();
    assert_eq!(back, to);
    // Producer routes never carry CORS, and an unlisted browser origin is 403.
    let parts = RequestParts {
        method: "GET",
        path: "/api/jobs/j1",
        origin: Some("https://evil.example"),
        authorization: Some("Bearer p"),
        ..RequestParts::default()
    };
    assert_eq!(refusal(&http::decide(&parts, &c, T0)).0, 403);
}

#[test]
fn create_is_decided_in_two_steps_and_the_body_is_parsed_once() {
    let c = edge_config();
    let parts = RequestParts {
        method: "POST",
        path: "/api/jobs",
        authorization: Some("Bearer p"),
        content_length: Some("1048577"),
        ..RequestParts::default()
    };
    assert_eq!(refusal(&http::decide(&parts, &c, T0)).0, 413);
    let parts = RequestParts {
        content_length: Some("1048576"),
        ..parts
    };
    assert_eq!(http::decide(&parts, &c, T0), Decision::ReadCreateBody);
    let unauthorized = RequestParts {
        authorization: Some("Bearer q"),
        ..parts
    };
    assert_eq!(refusal(&http::decide(&unauthorized, &c, T0)).0, 401);
    let to = http::decide_create(
        br#"{"pipeline":"csv_import","ttlSeconds":60}"#,
        "https://gw.example",
        || "new-id".to_owned(),
    )
    .unwrap();
    assert_eq!(to.job_id, "new-id");
    let RoomRequest::Create { request, origin } = to.request else {
        panic!()
    };
    assert_eq!(
        (request.ttl, origin.as_str()),
        (Millis(60_000), "https://gw.example")
    );
    let Err(Reply::Json { status, .. }) =
        http::decide_create(b"{}", "https://gw.example", || "x".into())
    else {
        panic!("accepted")
    };
    assert_eq!(status, 400);
}
