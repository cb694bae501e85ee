//! Text from outside (file names, folder names, decoder messages) made safe
//! to print: control characters are escaped, so a file named with a
//! terminal escape sequence or a newline cannot rewrite the operator's
//! terminal or forge a line in the journal.

use std::borrow::Cow;
use std::io::Write;

/// `s` with every control character but none written as `\u{..}`.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A log writer that escapes control characters in what passes through it,
/// except the line feed ending each record and the colour codes (SGR:
/// `ESC [ digits ; ... m`) the log formatter itself emits on a terminal.
pub struct EscapingWriter<W: Write> {
    inner: W,
}

impl<W: Write> EscapingWriter<W> {
    pub fn new(inner: W) -> EscapingWriter<W> {
        EscapingWriter { inner }
    }
}

/// Length of an SGR sequence at the start of `b` (`ESC [ [0-9;]* m`).
fn sgr_len(b: &[u8]) -> Option<usize> {
    let rest = b.strip_prefix(b"\x1b[")?;
    let n = rest
        .iter()
        .position(|&c| !(c.is_ascii_digit() || c == b';'))?;
    (rest.get(n) == Some(&b'm')).then_some(n + 3)
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while let Some(&b) = buf.get(i) {
            if let Some(n) = (b == 0x1b).then(|| sgr_len(&buf[i..])).flatten() {
                out.extend_from_slice(&buf[i..i + n]);
                i += n;
                continue;
            }
            if (b < 0x20 && b != b'\n') || b == 0x7f {
                write!(out, "\\u{{{b:x}}}")?;
            } else {
                out.push(b);
            }
            i += 1;
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape_controls("a/b c.dcm"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("x\u{1b}[2J\nfake line.png"),
            "x\\u{1b}[2J\\u{a}fake line.png"
        );
    }

    #[test]
    fn the_log_writer_keeps_colours_and_line_ends_and_escapes_the_rest() {
        let mut w = EscapingWriter::new(Vec::new());
        w.write_all(b"\x1b[33mWARN\x1b[0m skipped: a\x1b]0;owned\x07b\r.png\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "\x1b[33mWARN\x1b[0m skipped: a\\u{1b}]0;owned\\u{7}b\\u{d}.png\n"
        );
    }
}
