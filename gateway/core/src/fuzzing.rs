//! Entry points for the cargo-fuzz targets in `fuzz/`: each target is one call
//! into this module, so the checks live beside the code they attack.

use crate::protocol::{self, Incoming};
use crate::CloseCode;

/// Subscriber frame parser: never panics, and every refusal maps to a close code
/// that the gateway sends.
pub fn client_frame(data: &[u8]) {
    let frame = match std::str::from_utf8(data) {
        Ok(text) => Incoming::Text(text),
        Err(_) => Incoming::Binary(data.len()),
    };
    if let Err(e) = protocol::parse_client_frame(frame) {
        let code = crate::error::GatewayError::from(e).close_code();
        assert!(code.is_sent_by_gateway(), "{code:?}");
    }
}

/// Close-code round trip over any number.
pub fn close_code(data: &[u8]) {
    if let [a, b, ..] = *data {
        let n = u16::from_le_bytes([a, b]);
        assert_eq!(u16::from(CloseCode::from(n)), n);
    }
}
