//! The only module that prints: `INFO:` lines, warnings, `✔` / `✖`, per-file lines, progress.
//!
//! Every line, including DEBUG tracing, passes through [`Redactor`], which replaces every
//! registered secret (the OIDC token and its parts, secret keys, session tokens) with `***`.
//! Colours are dropped when `NO_COLOR` is set or the stream is not a terminal; symbols stay.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, RwLock};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Secrets that must never be printed, shared by [`Output`] and the tracing writer.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Register a secret. Short strings are ignored: they would mangle ordinary text.
    pub(crate) fn add(&self, secret: &str) {
        if secret.len() < 8 {
            return;
        }
        if let Ok(mut s) = self.secrets.write()
            && !s.iter().any(|x| x == secret)
        {
            {
                s.push(secret.to_string());
                // Longest first, so that a secret containing another is replaced whole.
                s.sort_by_key(|x| std::cmp::Reverse(x.len()));
            }
        }
    }

    /// The text with every secret replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.read() else {
            return text.to_string();
        };
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Prints pipe-style lines.
#[derive(Clone)]
pub(crate) struct Output {
    color_out: bool,
    color_err: bool,
    redactor: Redactor,
}

impl Output {
    /// `color` is false when NO_COLOR is set; terminals are detected here.
    pub(crate) fn new(color: bool, redactor: Redactor) -> Self {
        Output {
            color_out: color && std::io::stdout().is_terminal(),
            color_err: color && std::io::stderr().is_terminal(),
            redactor,
        }
    }

    /// Register a secret discovered at run time (e.g. STS-issued keys).
    pub(crate) fn add_secret(&self, secret: &str) {
        self.redactor.add(secret);
    }

    fn write_out(&self, line: &str) {
        let text = self.redactor.redact(line);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn write_err(&self, line: &str) {
        let text = self.redactor.redact(line);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    /// `INFO: …`
    pub(crate) fn info(&self, msg: impl AsRef<str>) {
        self.write_out(&format!("INFO: {}", clean(msg.as_ref())));
    }

    /// `WARNING: …` (yellow).
    pub(crate) fn warn(&self, msg: impl AsRef<str>) {
        let (c, r) = if self.color_err {
            (YELLOW, RESET)
        } else {
            ("", "")
        };
        self.write_err(&format!("{c}WARNING: {}{r}", clean(msg.as_ref())));
    }

    /// A green `✔ …`.
    pub(crate) fn success(&self, msg: impl AsRef<str>) {
        let (c, r) = if self.color_out {
            (GREEN, RESET)
        } else {
            ("", "")
        };
        self.write_out(&format!("{c}✔ {}{r}", clean(msg.as_ref())));
    }

    /// A red `✖ …` on standard error.
    pub(crate) fn fail(&self, msg: impl AsRef<str>) {
        let (c, r) = if self.color_err {
            (RED, RESET)
        } else {
            ("", "")
        };
        self.write_err(&format!("{c}✖ {}{r}", clean(msg.as_ref())));
    }

    /// A plain line, such as aws-cli's `upload: a to s3://b/a`.
    pub(crate) fn line(&self, msg: impl AsRef<str>) {
        self.write_out(&clean(msg.as_ref()));
    }

    /// A plain error line on standard error, such as aws-cli's `upload failed: …`.
    pub(crate) fn error_line(&self, msg: impl AsRef<str>) {
        self.write_err(&clean(msg.as_ref()));
    }
}

/// A message as it may be printed: text from the bucket, the environment or file names can
/// hold control characters (an escape sequence, a line break followed by a forged `✔` line).
/// Every control character but a tab is written escaped (`\n`, `\u{1b}`), except the line
/// breaks of the pipe's own multi-line messages, which indent what follows by two spaces.
fn clean(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for (i, c) in msg.char_indices() {
        if c == '\n' && msg[i + 1..].starts_with("  ") {
            out.push(c);
        } else if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A `Write` for tracing that redacts each formatted event before it reaches stderr.
struct RedactingStderr {
    redactor: Redactor,
}

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(self.redactor.redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Install tracing. With `debug`, this crate and the AWS request flow log at debug level.
///
/// `aws_sigv4` stays quiet even then: at debug it prints canonical requests, which carry the
/// session token header.
pub(crate) fn init_tracing(debug: bool, color: bool, redactor: Redactor) {
    let filter = if debug {
        "s3_deploy_pipe=debug,aws_config=debug,aws_smithy_runtime=debug,aws_sdk_s3=debug,aws_sdk_sts=debug,aws_sdk_cloudfront=debug,aws_sigv4=warn,warn"
    } else {
        "error"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(color && std::io::stderr().is_terminal())
        .with_target(true)
        .with_writer(move || RedactingStderr {
            redactor: redactor.clone(),
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_our_indented_lines_stay() {
        assert_eq!(clean("plain ✔ text"), "plain ✔ text");
        assert_eq!(clean("a\n✔ forged"), "a\\n✔ forged");
        assert_eq!(clean("x\u{1b}[32mgreen"), "x\\u{1b}[32mgreen");
        assert_eq!(clean("cause:\n  fix it"), "cause:\n  fix it");
        assert_eq!(clean("a\r\nb"), "a\\r\\nb");
    }

    #[test]
    fn redacts_every_secret_longest_first() {
        let r = Redactor::default();
        r.add("abcdefgh12345678");
        r.add("abcdefgh");
        r.add("short");
        assert_eq!(
            r.redact("x abcdefgh12345678 y abcdefgh z short"),
            "x *** y *** z short"
        );
    }
}
