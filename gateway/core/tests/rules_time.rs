//! Rules of virtual time: durations in whole milliseconds that never wrap,
//! `Retry-After` seconds rounded up, and times logged as `<n>ms`.

use gateway_core::Millis;

#[test]
fn durations_are_whole_milliseconds() {
    assert_eq!(Millis::from_secs(3), Millis(3_000));
    assert_eq!(Millis::from_mins(2), Millis(120_000));
    assert_eq!(Millis::from_hours(2), Millis(7_200_000));
    assert_eq!(Millis::ZERO, Millis(0));
}

#[test]
fn far_future_times_saturate_instead_of_wrapping() {
    assert_eq!(Millis::from_secs(u64::MAX), Millis(u64::MAX));
    assert_eq!(Millis::from_hours(u64::MAX / 1000), Millis(u64::MAX));
    assert_eq!(Millis(u64::MAX - 1).plus(Millis(5)), Millis(u64::MAX));
    assert_eq!(Millis(5).minus(Millis(7)), Millis(0));
    assert_eq!(Millis(7).minus(Millis(5)), Millis(2));
    assert_eq!(Millis(7).plus(Millis(5)), Millis(12));
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(Millis(0).ceil_secs(), 0);
    assert_eq!(Millis(1).ceil_secs(), 1);
    assert_eq!(Millis(1_000).ceil_secs(), 1);
    assert_eq!(Millis(1_001).ceil_secs(), 2);
}

#[test]
fn a_time_is_logged_in_milliseconds() {
    assert_eq!(Millis(1_500).to_string(), "1500ms");
    assert_eq!(Millis::ZERO.to_string(), "0ms");
}
