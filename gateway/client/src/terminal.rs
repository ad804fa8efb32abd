//! Producer text made safe to print on a terminal: a job's `message`,
//! `currentItem`, error and `summary` come from whoever holds the producer
//! secret, and a terminal obeys control characters in what it prints.

use std::borrow::Cow;

/// `text` without anything a terminal would act on: every C0 and C1 control
/// character and DEL, whole escape sequences (`ESC [ … final`, `CSI …`, and
/// the string ones: OSC, DCS, SOS, PM, APC up to BEL or ST; an unterminated one
/// runs to the end of the text), and the Unicode bidirectional overrides and
/// isolates, which reorder what is shown. Tab, line feed, vertical tab, form
/// feed and carriage return become one space each (a carriage return would
/// let a line overwrite itself); every other printable character is kept.
/// Borrows when nothing had to go.
#[must_use]
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut state = State::Text;
    for c in text.chars() {
        state = state.next(c, &mut out);
    }
    Cow::Owned(out)
}

/// Where the scan is: in plain text or inside an escape sequence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After ESC (and any intermediate bytes).
    Escape,
    /// Inside a control sequence: parameters and intermediates until a final byte.
    Csi,
    /// Inside a control string (OSC, DCS, SOS, PM, APC) until BEL or ST.
    ControlString,
    /// ESC inside a control string: `\` ends it (ST).
    ControlStringEscape,
}

const ESC: char = '\u{1b}';

impl State {
    fn next(self, c: char, out: &mut String) -> Self {
        match self {
            Self::Text => match c {
                ESC => Self::Escape,
                '\u{9b}' => Self::Csi,
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => Self::ControlString,
                '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r' => {
                    out.push(' ');
                    Self::Text
                }
                c if c.is_control() || is_bidi_control(c) => Self::Text,
                c => {
                    out.push(c);
                    Self::Text
                }
            },
            Self::Escape => match c {
                '[' => Self::Csi,
                ']' | 'P' | 'X' | '^' | '_' => Self::ControlString,
                ESC | ' '..='/' => Self::Escape,
                '0'..='~' => Self::Text,
                // Not an escape sequence after all: the ESC alone goes.
                c => Self::Text.next(c, out),
            },
            Self::Csi => match c {
                '@'..='~' => Self::Text,
                ' '..='?' => Self::Csi,
                c => Self::Text.next(c, out),
            },
            Self::ControlString => match c {
                '\u{07}' | '\u{9c}' => Self::Text,
                ESC => Self::ControlStringEscape,
                _ => Self::ControlString,
            },
            Self::ControlStringEscape => match c {
                '\\' => Self::Text,
                c => Self::Escape.next(c, out),
            },
        }
    }
}

/// The marks that override or isolate the direction of text (U+061C, U+200E,
/// U+200F, U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;
    use std::borrow::Cow;

    #[test]
    fn plain_text_is_borrowed_untouched() {
        for s in [
            "",
            "row 3 of books.csv",
            "Zürich – 東京 ✓ 🙂",
            r#"{"imported":25}"#,
        ] {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn escape_sequences_go_whole() {
        let cases = [
            ("\u{1b}[2Jcleared", "cleared"),
            ("a\u{1b}[1;31mred\u{1b}[0m b", "ared b"),
            ("\u{1b}[?1049h", ""),
            ("x\u{1b}]0;evil title\u{07}y", "xy"),
            (
                "x\u{1b}]8;;https://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\y",
                "xlinky",
            ),
            ("x\u{1b}Pq#0;2;0;0;0\u{1b}\\y", "xy"),
            ("x\u{1b}(0y", "xy"),
            ("x\u{1b}cy", "xy"),
            ("x\u{1b}]unterminated", "x"),
            ("trailing\u{1b}", "trailing"),
            ("x\u{1b}\u{1b}[2Jy", "xy"),
        ];
        for (input, want) in cases {
            assert_eq!(printable(input), want, "{input:?}");
        }
    }

    #[test]
    fn c1_controls_and_their_sequences_go() {
        assert_eq!(printable("a\u{9b}2Jb"), "ab");
        assert_eq!(printable("a\u{9d}0;title\u{9c}b"), "ab");
        assert_eq!(printable("a\u{9d}0;title\u{07}b"), "ab");
        assert_eq!(printable("a\u{85}b\u{80}c\u{9f}x\u{9c}d"), "abcd");
    }

    #[test]
    fn c0_controls_and_del_go_whitespace_becomes_a_space() {
        assert_eq!(printable("ring\u{07}\u{07}"), "ring");
        assert_eq!(printable("100%\rdone"), "100% done");
        assert_eq!(printable("a\tb\nc\u{0b}d\u{0c}e"), "a b c d e");
        assert_eq!(printable("nul\u{0}back\u{8}\u{8}del\u{7f}"), "nulbackdel");
        let every_c0: String = ('\u{0}'..='\u{1f}').chain(['\u{7f}']).collect();
        assert!(printable(&every_c0).chars().all(|c| c == ' '));
    }

    #[test]
    fn an_aborted_sequence_keeps_what_follows() {
        // A control character inside a CSI ends it; the text after is kept.
        assert_eq!(printable("a\u{1b}[12\nb"), "a b");
        // ESC before a non-ASCII character: only the ESC goes.
        assert_eq!(printable("a\u{1b}éb"), "aéb");
    }

    #[test]
    fn bidi_overrides_go() {
        assert_eq!(printable("invoice_\u{202e}fdp.exe"), "invoice_fdp.exe");
        assert_eq!(printable("\u{2066}a\u{2069}\u{200f}"), "a");
    }
}
