//! Framing: `[u32 length, big endian][u8 kind][payload]`. A JSON message, a chunk of
//! file data, or the end of a file. Sizes are capped before anything is allocated,
//! so a hostile peer costs at most one frame of memory.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest JSON message (a build request with its context manifest).
pub const MAX_JSON: usize = 64 << 20;
/// Largest data chunk.
pub const MAX_DATA: usize = 1 << 20;

const JSON: u8 = 1;
const DATA: u8 = 2;
const END: u8 = 3;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Json(Vec<u8>),
    Data(Vec<u8>),
    End,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The next frame; `None` when the peer closed the stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = head[4];
    let cap = match kind {
        JSON => MAX_JSON,
        DATA => MAX_DATA,
        END => 0,
        k => return Err(invalid(format!("unknown frame kind {k}"))),
    };
    if len > cap {
        return Err(invalid(format!(
            "frame of {len} bytes is over the {cap}-byte limit"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(match kind {
        JSON => Frame::Json(payload),
        DATA => Frame::Data(payload),
        _ => Frame::End,
    }))
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| invalid("frame too large".into()))?;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = kind;
    w.write_all(&head).await?;
    w.write_all(payload).await
}

pub async fn write_json<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(|e| invalid(e.to_string()))?;
    if bytes.len() > MAX_JSON {
        return Err(invalid(format!(
            "message of {} bytes is too large",
            bytes.len()
        )));
    }
    write_frame(w, JSON, &bytes).await?;
    w.flush().await
}

pub async fn write_data<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(MAX_DATA) {
        write_frame(w, DATA, chunk).await?;
    }
    Ok(())
}

pub async fn write_end<W: AsyncWrite + Unpin>(w: &mut W) -> io::Result<()> {
    write_frame(w, END, &[]).await?;
    w.flush().await
}

/// Read one JSON message of type `T`; `None` on a clean close.
pub async fn read_json<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    match read_frame(r).await? {
        None => Ok(None),
        Some(Frame::Json(b)) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| invalid(format!("malformed message: {e}"))),
        Some(other) => Err(invalid(format!(
            "expected a message, got a {} frame",
            match other {
                Frame::Data(_) => "data",
                _ => "end",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let mut buf = Vec::new();
        write_json(&mut buf, &serde_json::json!({"op": "info"}))
            .await
            .unwrap();
        write_data(&mut buf, &vec![7u8; MAX_DATA + 3])
            .await
            .unwrap();
        write_end(&mut buf).await.unwrap();
        let mut r = &buf[..];
        assert!(matches!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Json(_))
        ));
        assert!(
            matches!(read_frame(&mut r).await.unwrap(), Some(Frame::Data(d)) if d.len() == MAX_DATA)
        );
        assert!(matches!(read_frame(&mut r).await.unwrap(), Some(Frame::Data(d)) if d.len() == 3));
        assert_eq!(read_frame(&mut r).await.unwrap(), Some(Frame::End));
        assert_eq!(read_frame(&mut r).await.unwrap(), None);

        // A length over the cap is refused before allocating.
        let mut huge = (u32::MAX).to_be_bytes().to_vec();
        huge.push(JSON);
        assert!(read_frame(&mut &huge[..]).await.is_err());
        // Unknown kinds and truncated payloads are errors.
        assert!(read_frame(&mut &[0, 0, 0, 0, 9][..]).await.is_err());
        assert!(
            read_frame(&mut &[0, 0, 0, 5, JSON, b'{'][..])
                .await
                .is_err()
        );
    }
}
