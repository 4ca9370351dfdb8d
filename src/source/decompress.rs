//! Decompression of telemetry objects: gzip or zstd recognised by their magic bytes (the name
//! may lie), inflated as a stream of chunks with a size limit; what a cut-off or corrupt stream
//! still holds is kept, and the fault is said.

use std::io::Read;

/// Objects of more stored bytes than this are not fetched whole but read as a stream, and
/// decompressed on a thread of their own while their lines are decoded
/// (`CC_ANALYTICS_STREAM_OBJECT_BYTES` changes it, default 64 MiB): memory stays bounded
/// whatever an object's size, compressed or not, and one huge object keeps two cores busy.
pub fn stream_object_bytes() -> u64 {
    std::env::var("CC_ANALYTICS_STREAM_OBJECT_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(64 << 20)
}

/// Decompressed bytes of an object, and whether the compressed stream broke off early.
pub struct Decompressed {
    pub data: Vec<u8>,
    pub truncated: Option<String>,
    /// The object decompresses to more than `max_object_bytes()`: `data` holds the first part
    /// and `truncated` says so.
    pub too_large: bool,
}

/// How a streamed object ended: whole, cut (`truncated`: the fault), or at the size limit.
#[derive(Debug, Default)]
pub struct StreamEnd {
    pub truncated: Option<String>,
    pub too_large: bool,
}

/// The default limit on one object's decompressed size. Objects are decompressed as a stream in
/// chunks, so memory does not grow with it: the limit only bounds the time a decompression
/// bomb can take (a compacted object of many gigabytes is read whole).
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 64 << 30;
/// Environment variable that changes it (bytes).
pub const MAX_OBJECT_BYTES_ENV: &str = "CC_ANALYTICS_MAX_OBJECT_BYTES";
/// Decompressed bytes handed on at a time (`CC_ANALYTICS_STREAM_CHUNK_BYTES` changes it, for
/// tests of lines that span chunks).
const CHUNK: usize = 4 << 20;

fn chunk_bytes() -> usize {
    std::env::var("CC_ANALYTICS_STREAM_CHUNK_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(CHUNK)
}

/// The limit on one object's decompressed size (`CC_ANALYTICS_MAX_OBJECT_BYTES`, default 64 GiB).
pub fn max_object_bytes() -> usize {
    std::env::var(MAX_OBJECT_BYTES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_MAX_OBJECT_BYTES)
}

/// Decompresses objects as streams, with one reused inflate state and output buffer.
pub struct Decompressor {
    inflate: flate2::Decompress,
    buf: Vec<u8>,
    /// Decompressed bytes allowed per object.
    limit: usize,
    /// Decompressed bytes handed on at a time.
    chunk: usize,
}

impl Default for Decompressor {
    fn default() -> Self {
        Decompressor::with_limit(max_object_bytes())
    }
}

fn limit_message(limit: usize) -> String {
    format!(
        "decompresses to more than {limit} bytes ({MAX_OBJECT_BYTES_ENV}); the rest is not read"
    )
}

/// Hands decompressed bytes on to `sink`, at most `limit` of them in all.
struct Out<'s> {
    sink: &'s mut dyn FnMut(&[u8]),
    total: usize,
    limit: usize,
}

impl Out<'_> {
    /// Passes `b` on; false (after passing what fits) once the limit is passed.
    fn put(&mut self, b: &[u8]) -> bool {
        let room = self.limit - self.total;
        if b.len() > room {
            (self.sink)(&b[..room]);
            self.total = self.limit;
            return false;
        }
        (self.sink)(b);
        self.total += b.len();
        true
    }
}

impl Decompressor {
    pub fn with_limit(limit: usize) -> Self {
        Decompressor {
            inflate: flate2::Decompress::new(false),
            buf: Vec::new(),
            limit,
            chunk: chunk_bytes(),
        }
    }

    /// The same, handing on `chunk` decompressed bytes at a time.
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// The whole decompressed object (recognised by its magic number: gzip, zstd, or plain).
    pub fn decompress(&mut self, bytes: &[u8]) -> Decompressed {
        let mut data = Vec::new();
        let end = self.stream(bytes, &mut |c| data.extend_from_slice(c));
        Decompressed {
            data,
            truncated: end.truncated,
            too_large: end.too_large,
        }
    }

    /// Decompresses `bytes` (gzip, zstd or plain, by magic number) into `sink`, a chunk of at
    /// most a few MB at a time, in order. On a cut or corrupt stream, what was decompressed
    /// before the fault has been passed on, and the fault is returned.
    pub fn stream(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8])) -> StreamEnd {
        let mut out = Out {
            sink,
            total: 0,
            limit: self.limit,
        };
        if bytes.starts_with(&[0x1f, 0x8b]) {
            self.gunzip(bytes, &mut out)
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            self.unzstd(bytes, &mut out)
        } else {
            for c in bytes.chunks(self.chunk) {
                (out.sink)(c);
            }
            StreamEnd::default()
        }
    }

    fn unzstd(&mut self, bytes: &[u8], out: &mut Out<'_>) -> StreamEnd {
        let mut d = match zstd::stream::read::Decoder::new(bytes) {
            Ok(d) => d,
            Err(e) => return fault(e.to_string()),
        };
        self.buf.resize(self.chunk, 0);
        loop {
            match d.read(&mut self.buf) {
                Ok(0) => return StreamEnd::default(),
                Ok(n) => {
                    if !out.put(&self.buf[..n]) {
                        return too_large(self.limit);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return fault(e.to_string()),
            }
        }
    }

    /// Decompresses what `r` reads (gzip, zstd or plain, by magic number) into `sink`, a chunk
    /// at a time, reading the input a part at a time too: for objects too large to hold. On a
    /// cut or corrupt stream, what was decompressed before the fault has been passed on.
    pub fn stream_read(
        &mut self,
        r: Box<dyn std::io::Read + Send>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> StreamEnd {
        use std::io::{BufRead, Read};
        let mut input = std::io::BufReader::with_capacity(1 << 20, r);
        let magic = match input.fill_buf() {
            Ok(b) => b.get(..4).unwrap_or(b).to_vec(),
            Err(e) => return fault(e.to_string()),
        };
        let mut reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(input))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            match zstd::stream::read::Decoder::with_buffer(input) {
                Ok(d) => Box::new(d),
                Err(e) => return fault(e.to_string()),
            }
        } else {
            Box::new(input)
        };
        let mut out = Out {
            sink,
            total: 0,
            limit: self.limit,
        };
        let mut buf = vec![0u8; self.chunk];
        loop {
            // Fill the chunk (decoders return a little at a time) before handing it on.
            let mut filled = 0;
            let mut end = None;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => {
                        end = Some(StreamEnd::default());
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        end = Some(fault(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            "unexpected end of file".into()
                        } else {
                            format!("corrupt stream: {e}")
                        }));
                        break;
                    }
                }
            }
            if filled > 0 && !out.put(&buf[..filled]) {
                return too_large(self.limit);
            }
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// gzip (RFC 1952), one member or several in a row, each member's CRC and size checked.
    fn gunzip(&mut self, bytes: &[u8], out: &mut Out<'_>) -> StreamEnd {
        const EOF: &str = "unexpected end of file";
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.reserve_exact(self.chunk);
        let end = 'object: {
            let mut pos = 0;
            loop {
                match gzip_header(&bytes[pos..]) {
                    Ok(n) => pos += n,
                    Err(e) => break 'object fault(e.to_string()),
                }
                self.inflate.reset(false);
                let mut crc = flate2::Crc::new();
                let mut len = 0usize;
                loop {
                    let (before_in, before_out) = (self.inflate.total_in(), buf.len());
                    let status = self.inflate.decompress_vec(
                        &bytes[pos..],
                        &mut buf,
                        flate2::FlushDecompress::None,
                    );
                    pos += (self.inflate.total_in() - before_in) as usize;
                    crc.update(&buf[before_out..]);
                    len += buf.len() - before_out;
                    let full = buf.len() == buf.capacity();
                    let stuck = self.inflate.total_in() == before_in && buf.len() == before_out;
                    if stuck && !full && matches!(status, Ok(flate2::Status::BufError)) {
                        // No progress with room to write: the input ends mid-stream.
                        if !out.put(&buf) {
                            break 'object too_large(self.limit);
                        }
                        buf.clear();
                        break 'object fault(EOF.into());
                    }
                    if full
                        || !matches!(
                            status,
                            Ok(flate2::Status::Ok) | Ok(flate2::Status::BufError)
                        )
                    {
                        if !out.put(&buf) {
                            break 'object too_large(self.limit);
                        }
                        buf.clear();
                    }
                    match status {
                        Ok(flate2::Status::StreamEnd) => break,
                        Ok(_) if pos >= bytes.len() && !full => {
                            if !out.put(&buf) {
                                break 'object too_large(self.limit);
                            }
                            buf.clear();
                            break 'object fault(EOF.into());
                        }
                        Ok(_) => {}
                        Err(e) => break 'object fault(format!("corrupt deflate stream: {e}")),
                    }
                }
                // The trailer: CRC-32 and size of this member's output.
                let Some(t) = bytes.get(pos..pos + 8) else {
                    break 'object fault(EOF.into());
                };
                let (want_crc, want_len) = (
                    u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
                    u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
                );
                if crc.sum() != want_crc || len as u32 != want_len {
                    break 'object fault(
                        "corrupt gzip stream: checksum or size does not match".into(),
                    );
                }
                pos += 8;
                if pos >= bytes.len() {
                    break 'object StreamEnd::default();
                }
            }
        };
        self.buf = buf;
        end
    }
}

fn fault(why: String) -> StreamEnd {
    StreamEnd {
        truncated: Some(why),
        too_large: false,
    }
}

fn too_large(limit: usize) -> StreamEnd {
    StreamEnd {
        truncated: Some(limit_message(limit)),
        too_large: true,
    }
}

/// The length of the gzip member header at the start of `b` (RFC 1952 2.3).
fn gzip_header(b: &[u8]) -> std::result::Result<usize, &'static str> {
    const EOF: &str = "unexpected end of file";
    if b.len() < 10 {
        return Err(EOF);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return Err("invalid gzip header");
    }
    let flags = b[3];
    let mut p = 10;
    if flags & 0x04 != 0 {
        // FEXTRA: a length, then that many bytes.
        let n = b.get(p..p + 2).ok_or(EOF)?;
        p += 2 + u16::from_le_bytes([n[0], n[1]]) as usize;
    }
    for bit in [0x08, 0x10] {
        // FNAME, FCOMMENT: zero-terminated.
        if flags & bit != 0 {
            let z = memchr::memchr(0, b.get(p..).ok_or(EOF)?).ok_or(EOF)?;
            p += z + 1;
        }
    }
    if flags & 0x02 != 0 {
        p += 2; // FHCRC
    }
    if p > b.len() {
        return Err(EOF);
    }
    Ok(p)
}

/// Decompresses one object (see `Decompressor`).
pub fn decompress(bytes: &[u8]) -> Decompressed {
    Decompressor::default().decompress(bytes)
}
