//! A guest's stdout and stderr: lines go to the log (target `wasm`), capped per instance.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes of output logged per instance; the rest is dropped (counted once).
const CAP: usize = 64 * 1024;

#[derive(Clone)]
pub struct LogOutput {
    name: &'static str,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    line: Vec<u8>,
    written: usize,
    truncated: bool,
}

impl LogOutput {
    pub fn new(name: &'static str) -> LogOutput {
        LogOutput {
            name,
            inner: Arc::default(),
        }
    }

    fn put(&self, bytes: &[u8]) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        for &b in bytes {
            if g.written >= CAP {
                if !g.truncated {
                    g.truncated = true;
                    tracing::warn!(target: "wasm", "plugin {}: output over {CAP} bytes dropped", self.name);
                }
                return;
            }
            g.written += 1;
            if b == b'\n' || g.line.len() >= 4096 {
                let line = String::from_utf8_lossy(&g.line).into_owned();
                g.line.clear();
                if self.name == "stderr" {
                    tracing::warn!(target: "wasm", "plugin stderr: {line}");
                } else {
                    tracing::info!(target: "wasm", "plugin stdout: {line}");
                }
                if b == b'\n' {
                    continue;
                }
            }
            g.line.push(b);
        }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.put(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(4096)
    }
}

impl AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.put(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
