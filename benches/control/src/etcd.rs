//! A minimal etcd v3 client over etcd's JSON gateway (`POST /v3/kv/put`), one short HTTP/1.1
//! connection per request. Enough to time puts without an async runtime in the benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Errors talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The TCP connection or I/O failed.
    #[error("etcd at {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// etcd answered with a non-200 status.
    #[error("etcd at {addr} answered {status}: {body}")]
    Status {
        /// The endpoint.
        addr: SocketAddr,
        /// The HTTP status line.
        status: String,
        /// The body.
        body: String,
    },
}

/// An etcd endpoint reached over its JSON gateway.
#[derive(Clone, Debug)]
pub struct EtcdHttp {
    addr: SocketAddr,
    timeout: Duration,
}

impl EtcdHttp {
    /// A client for `addr` (e.g. `127.0.0.1:23790`) with a per-request timeout.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        EtcdHttp { addr, timeout }
    }

    /// Put `key` = `value`.
    pub fn put(&self, key: &str, value: &str) -> Result<(), EtcdError> {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        self.post("/v3/kv/put", &body).map(|_| ())
    }

    /// Is etcd serving (`GET /health` says `"health":"true"`)?
    pub fn healthy(&self) -> bool {
        self.request("GET /health HTTP/1.1", "")
            .is_ok_and(|b| b.replace(' ', "").contains("\"health\":\"true\""))
    }

    fn post(&self, path: &str, body: &str) -> Result<String, EtcdError> {
        self.request(&format!("POST {path} HTTP/1.1"), body)
    }

    fn request(&self, line: &str, body: &str) -> Result<String, EtcdError> {
        let io = |source| EtcdError::Io {
            addr: self.addr,
            source,
        };
        let mut s = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        s.set_nodelay(true).map_err(io)?;
        let req = format!(
            "{line}\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.lines().next().unwrap_or("").to_string();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(EtcdError::Status {
                addr: self.addr,
                status,
                body: body.to_string(),
            });
        }
        Ok(body.to_string())
    }
}

/// Standard base64 with padding (what etcd's gateway expects for bytes fields).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
    }
}
