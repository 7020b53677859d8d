//! Guest stdout/stderr, captured into porto's log.
//!
//! Each line a guest prints becomes one log event carrying the service
//! name and the request id, so output from concurrent instances never
//! interleaves mid-line and can be traced back to the request that made it.
//! A reused instance is attributed to each request in turn
//! ([`Attribution`]).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::attribution::Attribution;

/// A line longer than this is logged in pieces rather than buffered on.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone)]
pub(crate) struct GuestOutput {
    service: Arc<str>,
    stream: &'static str,
    attribution: Arc<RwLock<Attribution>>,
}

impl GuestOutput {
    pub(crate) fn new(
        service: Arc<str>,
        attribution: Arc<RwLock<Attribution>>,
        stream: &'static str,
    ) -> Self {
        Self {
            service,
            stream,
            attribution,
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.clone(),
            pending: Vec::new(),
        })
    }
}

struct LineWriter {
    output: GuestOutput,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let o = &self.output;
        Attribution::log(&o.attribution, |Attribution { request_id, .. }| {
            if o.stream == "stderr" {
                tracing::warn!(target: "guest", service = %o.service, request_id = %request_id, "{text}");
            } else {
                tracing::info!(target: "guest", service = %o.service, request_id = %request_id, "{text}");
            }
        });
    }

    fn flush_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() >= MAX_LINE {
            let chunk = std::mem::take(&mut self.pending);
            self.emit(&chunk);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.flush_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.emit(&rest);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }
}
