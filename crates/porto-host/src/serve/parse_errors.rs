//! Answers given before a request exists, in porto's JSON error envelope.
//!
//! hyper answers a request head it cannot parse (malformed, a bad
//! `Content-Length`, too large) on its own, with a bare status line and no
//! body, then closes the connection; no handler of porto's ever sees the
//! request. [`Enveloped`] wraps a connection's socket and replaces that
//! bare answer, as it is written, with the same status in the envelope
//! every other answer has (`content-type`, a JSON body, `x-request-id`).
//! It knows the bare answer because every answer porto itself sends
//! carries `x-request-id` (`serve/dispatcher.rs`), and hyper's never does.
//!
//! [`refusal`] is the same envelope as raw bytes, for a connection turned
//! away before hyper is given it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::failure::{Failure, envelope};
use crate::request_ids;

/// Longest head hyper writes for its own answers; anything longer is a
/// response porto or a guest made.
const MAX_BARE_HEAD: usize = 256;

pub(crate) struct Enveloped<S> {
    inner: S,
    /// The envelope being written in place of hyper's bare answer: its
    /// bytes, how many are out, and the length of the bare answer it
    /// replaces (what the caller is told was written).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<S> Enveloped<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> Enveloped<S> {
    /// Writes the pending replacement out; then reports the bare answer
    /// as written.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, replaces)) = &mut self.replacing else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => *written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let replaced = *replaces;
        self.replacing = None;
        Poll::Ready(Ok(replaced))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Enveloped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Enveloped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            let candidate = is_error_status_line(buf).then(|| enveloped(buf)).flatten();
            match candidate {
                Some(bytes) => this.replacing = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.drive(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let first = bufs.iter().find(|b| !b.is_empty());
            let last = bufs.iter().rfind(|b| !b.is_empty());
            // Cheap checks first: every response passes through here.
            let bare = total <= MAX_BARE_HEAD
                && first.is_some_and(|b| is_error_status_line(b))
                && last.is_some_and(|b| b.ends_with(b"\r\n\r\n"));
            let replacement = bare
                .then(|| {
                    enveloped(
                        &bufs
                            .iter()
                            .flat_map(|b| b.iter().copied())
                            .collect::<Vec<u8>>(),
                    )
                })
                .flatten();
            match replacement {
                Some(bytes) => this.replacing = Some((bytes, 0, total)),
                None => return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            }
        }
        this.drive(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replacing.is_some() {
            ready!(this.drive(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replacing.is_some() {
            ready!(this.drive(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Whether `bytes` start with an HTTP/1.x status line of a 4xx or 5xx.
fn is_error_status_line(bytes: &[u8]) -> bool {
    bytes.len() > 12
        && bytes.starts_with(b"HTTP/1.")
        && bytes[8] == b' '
        && matches!(bytes[9], b'4' | b'5')
}

/// The envelope for `written` when it is a bare error answer of hyper's:
/// a whole head, an error status, no body and no `x-request-id`.
fn enveloped(written: &[u8]) -> Option<Vec<u8>> {
    if written.len() > MAX_BARE_HEAD || !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(written).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()?;
    if status < 400 {
        return None;
    }
    let mut date = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case(request_id::HEADER) {
            return None;
        }
        if name.eq_ignore_ascii_case("date") {
            date = Some(value.trim());
        }
    }
    let failure = match status {
        431 => Failure::headers_too_large(),
        414 => Failure::uri_too_long(),
        _ => Failure {
            status,
            ..Failure::unparsable()
        },
    };
    Some(refusal(&failure, date))
}

/// `failure` as a whole HTTP/1.1 answer in the envelope, with the header
/// its status calls for, closing the connection.
pub(crate) fn refusal(failure: &Failure, date: Option<&str>) -> Vec<u8> {
    let request_id = request_ids::generate();
    let body = envelope(failure.status, failure.code, failure.message, &request_id);
    let reason = http::StatusCode::from_u16(failure.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\n{}: {request_id}\r\ncontent-length: {}\r\nconnection: close\r\n",
        failure.status,
        request_id::HEADER,
        body.len()
    );
    if let Some((name, value)) = failure.status_header()
        && name != http::header::CONNECTION
    {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(date) = date {
        head.push_str(&format!("date: {date}\r\n"));
    }
    head.push_str("\r\n");
    let mut answer = head.into_bytes();
    answer.extend_from_slice(body.as_bytes());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn a_bare_error_head_gets_the_envelope_and_keeps_status_and_date() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n";
        let answer = as_text(&enveloped(bare).expect("rewritten"));
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.contains("content-type: application/json\r\n"));
        assert!(answer.contains("x-request-id: "));
        assert!(answer.contains("date: Tue, 01 Dec 2026 10:00:00 GMT\r\n"));
        let body = answer.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"]["code"], "headers_too_large");
        let length = format!("content-length: {}\r\n", body.len());
        assert!(answer.contains(&length));
    }

    #[test]
    fn answers_porto_made_pass_unchanged() {
        for written in [
            &b"HTTP/1.1 400 Bad Request\r\nx-request-id: abc\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}",
            b"{\"error\": 1}",
        ] {
            assert_eq!(enveloped(written), None, "{}", as_text(written));
        }
    }

    #[tokio::test]
    async fn the_caller_is_told_the_bare_answer_was_written() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, mut server) = tokio::io::duplex(4096);
        let mut wrapped = Enveloped::new(client);
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let written = wrapped.write(bare).await.expect("write");
        assert_eq!(written, bare.len());
        wrapped.shutdown().await.expect("shutdown");
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.expect("read");
        assert!(as_text(&received).contains("\"bad_request\""));
    }
}
