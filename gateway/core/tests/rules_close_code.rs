//! Rules of the close-code table (SPEC §4): every number survives a round trip,
//! the gateway sends exactly the thirteen named codes but 1006, and each code
//! tells a subscriber what to do, with the delay before a reconnect.

use gateway_core::close_code::TABLE;
use gateway_core::{ClientAction, CloseCode, Millis};

const NAMED: [(u16, CloseCode); 13] = [
    (1000, CloseCode::Completed),
    (1001, CloseCode::Canceled),
    (1002, CloseCode::Protocol),
    (1003, CloseCode::Unsupported),
    (1006, CloseCode::Abnormal),
    (1008, CloseCode::Revoked),
    (1009, CloseCode::TooBig),
    (1011, CloseCode::InternalError),
    (1012, CloseCode::Restarting),
    (1013, CloseCode::TryAgainLater),
    (4000, CloseCode::Superseded),
    (4001, CloseCode::JobFailed),
    (4002, CloseCode::Idle),
];

#[test]
fn each_named_code_has_its_spec_number_both_ways() {
    for (n, code) in NAMED {
        assert_eq!(CloseCode::from(n), code, "{n}");
        assert_eq!(code.as_u16(), n, "{code:?}");
        assert_eq!(u16::from(code), n, "{code:?}");
        assert_eq!(code.to_string(), n.to_string(), "{code:?}");
    }
}

#[test]
fn any_other_number_round_trips_as_other() {
    for n in (0..=u16::MAX).filter(|n| NAMED.iter().all(|(m, _)| m != n)) {
        let code = CloseCode::from(n);
        assert_eq!(code, CloseCode::Other(n));
        assert_eq!(u16::from(code), n);
        assert_eq!(code.to_string(), n.to_string());
    }
}

#[test]
fn the_gateway_sends_every_named_code_but_1006() {
    for (n, code) in NAMED {
        assert_eq!(code.is_sent_by_gateway(), n != 1006, "{n}");
    }
    for n in [
        0,
        999,
        1004,
        1005,
        1007,
        1010,
        1014,
        3000,
        4003,
        4999,
        u16::MAX,
    ] {
        assert!(!CloseCode::from(n).is_sent_by_gateway(), "{n}");
    }
}

#[test]
fn the_table_lists_each_named_code_once_in_spec_order() {
    let in_table: Vec<u16> = TABLE.iter().map(|r| r.code.as_u16()).collect();
    assert_eq!(
        in_table,
        [1000, 1001, 1002, 1003, 1008, 1009, 1011, 1012, 1013, 1006, 4000, 4001, 4002]
    );
}

#[test]
fn each_code_tells_the_subscriber_what_to_do() {
    let reconnect = |secs| ClientAction::Reconnect {
        min_delay: Millis::from_secs(secs),
    };
    let want = [
        (1000, ClientAction::Done),
        (1001, ClientAction::Done),
        (4001, ClientAction::Done),
        (1002, ClientAction::Stop),
        (1003, ClientAction::Stop),
        (1009, ClientAction::Stop),
        (4000, ClientAction::Stop),
        (1008, ClientAction::Reauthenticate),
        (1011, reconnect(1)),
        (1013, reconnect(5)),
        (1012, reconnect(0)),
        (1006, reconnect(0)),
        (4002, reconnect(0)),
        // A code the gateway never sends is a dropped connection.
        (1005, reconnect(0)),
        (4999, reconnect(0)),
    ];
    for (n, action) in want {
        assert_eq!(CloseCode::from(n).action(), action, "{n}");
    }
}
