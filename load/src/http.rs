//! One HTTP/1.1 GET to a loopback server, for the benchmarks' setup: enough
//! to poll a playlist and copy the files it lists, without an HTTP client
//! crate. One request per connection (`Connection: close`); the body may be
//! sized by `Content-Length`, chunked, or run to the end of the connection.
//! [`parse_response`] is pure.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response read; the biggest file a benchmark copies is a
/// segment of a few megabytes.
const MAX_RESPONSE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("GET 127.0.0.1:{port}{path} failed")]
    Io {
        port: u16,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET 127.0.0.1:{port}{path} took longer than {timeout:?}")]
    Timeout {
        port: u16,
        path: String,
        timeout: Duration,
    },
    #[error("GET 127.0.0.1:{port}{path}: malformed response: {reason}")]
    Malformed {
        port: u16,
        path: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs `path` from `127.0.0.1:port`, all within `timeout`.
///
/// # Errors
///
/// When the connection fails, the whole exchange takes longer than
/// `timeout`, or the response cannot be parsed. Any status is a response.
pub async fn get(port: u16, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    let exchange = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(source)) => {
            return Err(HttpError::Io {
                port,
                path: path.to_string(),
                source,
            });
        }
        Err(_) => {
            return Err(HttpError::Timeout {
                port,
                path: path.to_string(),
                timeout,
            });
        }
    };
    parse_response(&raw).map_err(|reason| HttpError::Malformed {
        port,
        path: path.to_string(),
        reason,
    })
}

/// A whole HTTP/1.1 response, read to the end of the connection, to its
/// status and decoded body (RFC 9112 section 6.3: chunked first, then
/// `Content-Length`, else up to the close).
///
/// # Errors
///
/// A short description of what is wrong.
pub fn parse_response(raw: &[u8]) -> Result<Response, &'static str> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "headers are not UTF-8")?;
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("not an HTTP/1 status line");
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or("no status code")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("header without a colon")?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        }
    }
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = length {
        rest.get(..length)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    // Bounded: every round consumes at least the size line's CRLF.
    loop {
        let line_end = find(rest, b"\r\n").ok_or("chunk size without CRLF")?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("chunk cut short")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk without CRLF")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(raw),
            Ok(Response {
                status: 200,
                body: b"hello".to_vec()
            })
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello"),
            Err("body shorter than Content-Length")
        );
    }

    #[test]
    fn chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap().body, b"hello!");
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert_eq!(parse_response(cut), Err("chunk cut short"));
    }

    #[test]
    fn until_close_and_errors() {
        let raw = b"HTTP/1.1 404 Not Found\r\n\r\nno such stream";
        assert_eq!(
            parse_response(raw),
            Ok(Response {
                status: 404,
                body: b"no such stream".to_vec()
            })
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n"),
            Err("no end of headers")
        );
        assert_eq!(
            parse_response(b"SSH-2.0\r\n\r\n"),
            Err("not an HTTP/1 status line")
        );
    }

    #[tokio::test]
    async fn against_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let n = socket.read(&mut request).await.unwrap();
            request.truncate(n);
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let response = get(port, "/hls/tree/index.m3u8", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.body, b"ok");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /hls/tree/index.m3u8 HTTP/1.1\r\n"),
            "{request}"
        );
    }
}
