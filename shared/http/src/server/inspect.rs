//! The connection's bytes as they arrive, checked one request head at a
//! time before the HTTP implementation sees them.
//!
//! Each head is held back until it is complete and valid. A head that is
//! malformed, too long, ambiguous about its body's length, or (HTTP/1.1)
//! without `Host` is never passed on: the connection reads as closed from
//! there, the requests before it are answered, and the refusal — a SCIM
//! error body, like every other error — is the last thing written before
//! the connection closes. Body bytes pass through, counted, so that the
//! next head is found where it starts (`Content-Length` or chunked framing).
//!
//! Writes that the peer does not take within the write timeout fail, so a
//! client that never reads cannot hold a connection forever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use scim_protocol::ScimError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Limits on request heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The longest request line (method, target, version), bytes: 414 past it.
    pub max_request_line: usize,
    /// The longest head (request line and headers), bytes: 431 past it.
    pub max_head: usize,
    /// The most header fields: 431 past it.
    pub max_headers: usize,
    /// The largest body a request may have, bytes: a chunk announced larger
    /// is 413 at once, before it is waited for.
    pub max_body: u64,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self { max_request_line: 8 * 1024, max_head: 32 * 1024, max_headers: 100, max_body: 1 << 20 }
    }
}

/// Where the reader is in the request stream.
#[derive(Debug)]
enum Framing {
    /// Collecting a head; nothing of it has been passed on yet.
    Head,
    /// Passing on this many more body bytes.
    Body(u64),
    /// Passing on a chunked body.
    Chunked(Chunk),
    /// A head was refused: nothing more is read.
    Refused,
}

/// Where the reader is inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the chunk-size line (size digits, then extensions, up to LF).
    Size { size: u64, digits: u8, in_extension: bool },
    /// Inside chunk data.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// In the trailer section: at the start of a line (`true`) or inside one.
    Trailer { line_start: bool },
}

/// Why a head is refused, as the status and the SCIM error to write.
fn refusal(status: u16, detail: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let body = ScimError::new(status, None, detail).to_json().to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Check a complete head and say how its body is framed.
fn check_head(head: &[u8], limits: &HeadLimits) -> Result<Framing, Vec<u8>> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(refusal(400, "the request head is incomplete")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refusal(431, &format!("the request has more than {} header fields", limits.max_headers)));
        }
        Err(e) => return Err(refusal(400, &format!("the request is not valid HTTP/1.1: {e}"))),
    }
    let http11 = req.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut host = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| refusal(400, "Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(refusal(400, "the request has two different Content-Length values"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(refusal(400, "Transfer-Encoding needs HTTP/1.1"));
            }
            // Exactly `chunked`, once: a list (`gzip, chunked`, `chunked,
            // chunked`) is a coding this service does not apply, or a
            // framing two readers could take apart differently.
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(refusal(400, "the only Transfer-Encoding accepted is a single 'chunked'"));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("host") {
            if host {
                return Err(refusal(400, "the request has two Host headers"));
            }
            host = true;
        }
    }
    if chunked && length.is_some() {
        // Two framings for one body is how requests are smuggled past a
        // proxy that reads the other one (RFC 9112 §6.3).
        return Err(refusal(400, "the request has both Content-Length and Transfer-Encoding; send one"));
    }
    if http11 && !host {
        return Err(refusal(400, "an HTTP/1.1 request needs a Host header"));
    }
    Ok(if chunked {
        Framing::Chunked(Chunk::Size { size: 0, digits: 0, in_extension: false })
    } else {
        match length {
            Some(n) if n > 0 => Framing::Body(n),
            _ => Framing::Head,
        }
    })
}

impl Chunk {
    /// Advance over `bytes`; returns how many were consumed and whether the
    /// body ended (the rest belongs to the next head), or an error.
    fn advance(&mut self, bytes: &[u8], max_body: u64) -> Result<(usize, bool), Vec<u8>> {
        let bad = || refusal(400, "the chunked body is malformed");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self {
                Chunk::Size { size, digits, in_extension } => {
                    if b == b'\n' {
                        if *digits == 0 {
                            return Err(bad());
                        }
                        if *size > max_body {
                            return Err(refusal(413, &format!("a chunk of the body is larger than {max_body} bytes")));
                        }
                        *self = if *size == 0 { Chunk::Trailer { line_start: true } } else { Chunk::Data(*size) };
                    } else if *in_extension || b == b'\r' {
                        // Extensions (`;name=value`) and the CR are skipped.
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        *in_extension = true;
                    } else {
                        let d = (b as char).to_digit(16).ok_or_else(bad)?;
                        *digits = digits.saturating_add(1);
                        if *digits > 16 {
                            return Err(bad());
                        }
                        *size = (*size << 4) | u64::from(d);
                    }
                    i += 1;
                }
                Chunk::Data(left) => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len() - i);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        *self = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => {
                    match b {
                        b'\r' => {}
                        b'\n' => *self = Chunk::Size { size: 0, digits: 0, in_extension: false },
                        _ => return Err(bad()),
                    }
                    i += 1;
                }
                Chunk::Trailer { line_start } => {
                    i += 1;
                    match b {
                        b'\n' if *line_start => return Ok((i, true)),
                        b'\n' => *line_start = true,
                        b'\r' => {}
                        _ => *line_start = false,
                    }
                }
            }
        }
        Ok((i, false))
    }
}

/// A connection whose request heads are checked before they are passed on.
pub struct Inspected<IO> {
    io: IO,
    limits: HeadLimits,
    framing: Framing,
    /// Bytes read but not yet passed on: a head being collected, or what
    /// follows a head that was passed on.
    pending: Vec<u8>,
    /// How much of `pending` is a validated head or body, ready to pass on.
    ready: usize,
    /// The refusal still to write before the connection closes.
    refusal: Option<(Vec<u8>, usize)>,
    write_timeout: Duration,
    write_deadline: Option<Pin<Box<Sleep>>>,
    shut: bool,
    linger: Option<Pin<Box<Sleep>>>,
    stats: Option<std::sync::Arc<super::stats::ConnectionStats>>,
}

impl<IO> Inspected<IO> {
    pub fn new(io: IO, limits: HeadLimits, write_timeout: Duration) -> Self {
        Self {
            io,
            limits,
            framing: Framing::Head,
            pending: Vec::new(),
            ready: 0,
            refusal: None,
            write_timeout,
            write_deadline: None,
            shut: false,
            linger: None,
            stats: None,
        }
    }

    /// Count this connection's refused heads in `stats`.
    pub fn counting(mut self, stats: std::sync::Arc<super::stats::ConnectionStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    fn refuse(&mut self, response: Vec<u8>) {
        if let Some(stats) = &self.stats {
            stats.count(super::stats::Refusal::HeadRefused);
        }
        self.framing = Framing::Refused;
        self.pending.clear();
        self.ready = 0;
        self.refusal = Some((response, 0));
    }

    /// Classify what is in `pending` past `ready`: mark validated heads and
    /// body bytes ready, or refuse.
    fn scan(&mut self) {
        while self.ready < self.pending.len() {
            let rest = &self.pending[self.ready..];
            match &mut self.framing {
                Framing::Refused => return,
                Framing::Body(left) => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                    *left -= take as u64;
                    self.ready += take;
                    if *left == 0 {
                        self.framing = Framing::Head;
                    }
                }
                Framing::Chunked(chunk) => match chunk.advance(rest, self.limits.max_body) {
                    Ok((used, done)) => {
                        self.ready += used;
                        if done {
                            self.framing = Framing::Head;
                        }
                    }
                    Err(r) => return self.refuse(r),
                },
                Framing::Head => {
                    // Blank lines before a request are allowed (RFC 9112 §2.2).
                    let skip = rest.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
                    if skip > 0 {
                        self.ready += skip;
                        continue;
                    }
                    // Every line of a head ends with CRLF (RFC 9112 §2.2); a
                    // bare LF is refused now, not left to time out.
                    if rest.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
                        return self
                            .refuse(refusal(400, "a line of the request head ends without CR; end lines with CRLF"));
                    }
                    let line_end = rest.iter().position(|b| *b == b'\n');
                    if line_end.unwrap_or(rest.len()) > self.limits.max_request_line {
                        let max = self.limits.max_request_line;
                        return self.refuse(refusal(414, &format!("the request line is longer than {max} bytes")));
                    }
                    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
                        if rest.len() > self.limits.max_head {
                            let max = self.limits.max_head;
                            return self.refuse(refusal(431, &format!("the request head is longer than {max} bytes")));
                        }
                        return;
                    };
                    if end > self.limits.max_head {
                        let max = self.limits.max_head;
                        return self.refuse(refusal(431, &format!("the request head is longer than {max} bytes")));
                    }
                    match check_head(&rest[..end], &self.limits) {
                        Ok(next) => {
                            self.ready += end;
                            self.framing = next;
                        }
                        Err(r) => return self.refuse(r),
                    }
                }
            }
        }
    }
}

impl Inspected<tokio::net::TcpStream> {
    /// Wait for the connection's first bytes without taking them.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.peek(buf).await
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Inspected<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if matches!(this.framing, Framing::Refused) {
                // Reads as closed: what came before is answered, then the
                // refusal is written on shutdown.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: whatever head was half-sent is dropped.
                this.pending.clear();
                return Poll::Ready(Ok(()));
            }
            this.pending.extend_from_slice(read.filled());
            this.scan();
        }
    }
}

impl<IO: AsyncWrite + Unpin> Inspected<IO> {
    /// Fail a write the peer has not taken within the write timeout.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let deadline = self.write_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the client did not read the response in time"))
    }

    fn track<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Inspected<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.refusal.take() {
            if written >= bytes.len() {
                break;
            }
            let polled = Pin::new(&mut self.io).poll_write(cx, &bytes[written..]);
            match self.track(cx, polled) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => self.refusal = Some((bytes, written + n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.refusal = Some((bytes, written));
                    return Poll::Pending;
                }
            }
        }
        if !self.shut {
            let polled = Pin::new(&mut self.io).poll_shutdown(cx);
            ready!(self.track(cx, polled))?;
            self.shut = true;
        }
        if matches!(self.framing, Framing::Refused) {
            // After a refusal the client may still be sending what followed
            // the head. Closing with unread bytes resets the connection,
            // which can destroy the answer before the client reads it: read
            // and drop for a moment first.
            let linger = self.linger.get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
            if linger.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            loop {
                let mut scratch = [0u8; 8192];
                let mut read = ReadBuf::new(&mut scratch);
                match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                    Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
                    Poll::Ready(_) => break,
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// How long a refused connection reads and drops before it closes.
const LINGER: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(head: &str) -> Result<Framing, String> {
        check_head(head.as_bytes(), &HeadLimits::default()).map_err(|r| String::from_utf8_lossy(&r).into_owned())
    }

    #[test]
    fn heads_are_framed_by_their_body_length() {
        assert!(matches!(framing_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Framing::Head)));
        assert!(matches!(
            framing_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"),
            Ok(Framing::Body(12))
        ));
        assert!(matches!(
            framing_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Framing::Chunked(_))
        ));
        assert!(matches!(framing_of("GET / HTTP/1.0\r\n\r\n"), Ok(Framing::Head)), "HTTP/1.0 needs no Host");
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_refused_with_scim_errors() {
        for (head, status, says) in [
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "both"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "two different"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400, "not a number"),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "single 'chunked'"),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "single 'chunked'"),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, "single 'chunked'"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "single",
            ),
            ("GET / HTTP/1.1\r\n\r\n", 400, "needs a Host"),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Host"),
            ("GET\x01 / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not valid HTTP"),
            ("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400, "not valid HTTP"),
        ] {
            let r = framing_of(head).err().unwrap_or_else(|| panic!("{head:?} accepted"));
            assert!(r.starts_with(&format!("HTTP/1.1 {status} ")), "{head:?}: {r}");
            assert!(r.contains("application/scim+json") && r.contains("urn:ietf:params:scim:api:messages:2.0:Error"));
            assert!(r.contains(says), "{head:?}: {r}");
        }
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(120));
        assert!(framing_of(&many).is_err_and(|r| r.starts_with("HTTP/1.1 431")));
    }

    #[test]
    fn chunked_bodies_end_where_the_next_head_starts() {
        let mut c = Chunk::Size { size: 0, digits: 0, in_extension: false };
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET /next";
        let (used, done) = c.advance(body, 1 << 20).unwrap_or_else(|e| panic!("{}", String::from_utf8_lossy(&e)));
        assert!(done);
        assert_eq!(&body[used..], b"GET /next");
        // Byte by byte gives the same end.
        let mut c = Chunk::Size { size: 0, digits: 0, in_extension: false };
        let mut total = 0;
        for b in body.iter() {
            let (used, done) = c.advance(std::slice::from_ref(b), 1 << 20).unwrap_or_else(|_| panic!("malformed"));
            total += used;
            if done {
                break;
            }
        }
        assert_eq!(total, used);
        let mut c = Chunk::Size { size: 0, digits: 0, in_extension: false };
        assert!(c.advance(b"zz\r\n", 1 << 20).is_err());
        let mut c = Chunk::Size { size: 0, digits: 0, in_extension: false };
        assert!(c.advance(b"FFFFFFFFFFFFFFFFF\r\n", 1 << 20).is_err(), "a size past 64 bits");
        let mut c = Chunk::Size { size: 0, digits: 0, in_extension: false };
        let over = c.advance(b"100001\r\n", 1 << 20).err().map(|r| String::from_utf8_lossy(&r).into_owned());
        assert!(over.is_some_and(|r| r.starts_with("HTTP/1.1 413 ")), "a chunk over the body limit is 413 at once");
    }
}
