//! The fast path of decoding a line: a scanner specialised to the OTLP-JSON shapes this job
//! reads, building the [`Flat`] document straight from the bytes (no serde visitors, one vector
//! per kind of list instead of one per attribute list).
//!
//! It accepts only what it is sure of: well-formed JSON whose every field it reads has the type
//! serde expects. Anything else — an escaped key, a duplicate field, `null` where serde wants a
//! list, an array in place of an object, a lone surrogate, nesting past [`MAX_DEPTH`], invalid
//! JSON — gives `None`, and the line goes through serde (`wire`), which decides. So the scanner
//! never changes what a line decodes to; the tests check it against serde on mutated lines.
//! Numbers other than short non-negative integers, and strings with escapes, are handed to
//! serde_json itself, so they come out bit for bit as serde makes them.

use std::borrow::Cow;

use super::depth::MAX_DEPTH;
use super::flat::{
    choose, Flat, FlatLog, FlatMetric, FlatPoint, FlatResource, FlatScope, PointList, Span,
};
use super::values::{AnyValue, Num};
use super::wire::KeyValue;

/// The line as a flat document, or `None` when serde must decide.
pub(super) fn scan(line: &str) -> Option<Flat<'_>> {
    let mut s = Scanner {
        s: line,
        b: line.as_bytes(),
        i: 0,
        depth: 0,
        f: Flat::default(),
    };
    s.doc()?;
    s.ws();
    (s.i == s.b.len()).then_some(s.f)
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    f: Flat<'a>,
}

/// The offset of the first byte a string cannot hold plainly (a quote, a backslash or a control
/// character), eight bytes at a time: strings here are mostly short keys and ids, for which a
/// call to `memchr` costs more than it saves.
#[inline]
fn to_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte's high bit is set where it is zero after the xor (a quote or a backslash), or
        // below 0x20; exact for the lowest such byte, which is the one taken.
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let hit = zero(w ^ (ONES * 0x22))
            | zero(w ^ (ONES * 0x5c))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| i + k)
}

/// Marks a field seen; `None` (serde's "duplicate field") if it was.
#[inline]
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `null` at the cursor (consumed), or not.
    #[inline]
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    /// The members of an object, each handed to `field` with its key (after the colon).
    #[inline]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.i += 1;
        self.enter()?;
        if self.peek()? == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            let (a, b, escaped) = self.string()?;
            if escaped {
                return None;
            }
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            let bytes: &'a [u8] = self.b;
            field(self, &bytes[a..b])?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of an array, each handed to `item`.
    #[inline]
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.peek()? != b'[' {
            return None;
        }
        self.i += 1;
        self.enter()?;
        if self.peek()? == b']' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    #[inline]
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A string at the cursor: the byte range between its quotes, and whether it has escapes.
    /// Control characters and unknown escapes are refused, as serde_json refuses them.
    #[inline]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i += to_special(&self.b[i..])?;
            match self.b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Some((start, i, escaped));
                }
                b'\\' => {}
                _ => return None, // a control character
            }
            escaped = true;
            match *self.b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = self.b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            }
        }
    }

    /// A string value, borrowed; one with escapes unescaped by serde_json (a lone surrogate,
    /// which serde refuses in a string it keeps, gives `None`).
    #[inline]
    fn cow(&mut self) -> Option<Cow<'a, str>> {
        let (a, b, escaped) = self.string()?;
        let s: &'a str = self.s;
        if !escaped {
            return Some(Cow::Borrowed(&s[a..b]));
        }
        serde_json::from_str::<String>(&s[a - 1..b + 1])
            .ok()
            .map(Cow::Owned)
    }

    /// A JSON number's text at the cursor, checked against the JSON grammar; with whether it is
    /// a plain non-negative integer.
    #[inline]
    fn number_text(&mut self) -> Option<(&'a str, bool)> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut plain = true;
        if b.get(i) == Some(&b'-') {
            plain = false;
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            plain = false;
            i += 1;
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            plain = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return None;
            }
        }
        self.i = i;
        let s: &'a str = self.s;
        Some((&s[start..i], plain))
    }

    /// A value read as [`Num`]: a number, a numeric string, a boolean; `null` is none.
    #[inline]
    fn opt_num(&mut self) -> Option<Option<Num<'a>>> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(None)
            }
            b'"' => Some(Some(Num::Str(self.cow()?))),
            b't' => {
                self.literal(b"true")?;
                Some(Some(Num::Str(Cow::Owned("true".into()))))
            }
            b'f' => {
                self.literal(b"false")?;
                Some(Some(Num::Str(Cow::Owned("false".into()))))
            }
            b'-' | b'0'..=b'9' => {
                let (text, plain) = self.number_text()?;
                if plain && text.len() <= 18 {
                    // At most 18 digits: an i64, as serde makes it.
                    let v = text.bytes().fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
                    return Some(Some(Num::Int(v)));
                }
                serde_json::from_str::<Num<'a>>(text).ok().map(Some)
            }
            _ => None,
        }
    }

    /// Any JSON value, checked and passed over.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(|s, _| s.skip()),
            b'[' => self.array(|s| s.skip()),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number_text().map(|_| ()),
            _ => None,
        }
    }

    /// A value kept as its JSON text (`null` is none).
    fn opt_raw(&mut self) -> Option<Option<&'a str>> {
        if self.null()? {
            return Some(None);
        }
        let start = self.i;
        self.skip()?;
        let s: &'a str = self.s;
        Some(Some(&s[start..self.i]))
    }

    fn doc(&mut self) -> Option<()> {
        let mut seen = 0;
        self.object(|s, k| match k {
            b"resourceLogs" => {
                once(&mut seen, 1)?;
                if s.null()? {
                    return Some(());
                }
                s.f.has_logs = true;
                s.array(Self::resource_logs)
            }
            b"resourceMetrics" => {
                once(&mut seen, 2)?;
                if s.null()? {
                    return Some(());
                }
                s.f.has_metrics = true;
                s.array(Self::resource_metrics)
            }
            _ => s.skip(),
        })
    }

    /// An attribute list, pushed; its span.
    fn attributes(&mut self) -> Option<Span> {
        let start = self.f.attrs.len();
        self.array(Self::key_value)?;
        Some(Span::new(start, self.f.attrs.len()))
    }

    fn key_value(&mut self) -> Option<()> {
        let (at, depth) = (self.i, self.depth);
        if let Some(kv) = self.compact_key_value() {
            self.f.attrs.push(kv);
            return Some(());
        }
        (self.i, self.depth) = (at, depth);
        let mut seen = 0;
        let mut key = None;
        let mut value = AnyValue::Absent;
        self.object(|s, k| match k {
            b"key" => {
                once(&mut seen, 1)?;
                key = Some(s.cow()?);
                Some(())
            }
            b"value" => {
                once(&mut seen, 2)?;
                value = s.any_value()?;
                Some(())
            }
            _ => s.skip(),
        })?;
        self.f.attrs.push(KeyValue { key: key?, value });
        Some(())
    }

    /// An attribute written as the Collector writes it, `{"key":"…","value":{…}}` with no
    /// space and no other field: read without looking its fields up. `None` (nothing pushed)
    /// for any other spelling, which the general path then reads.
    #[inline]
    fn compact_key_value(&mut self) -> Option<KeyValue<'a>> {
        self.ws();
        let b = self.b;
        if !b[self.i..].starts_with(br#"{"key":"#) {
            return None;
        }
        self.i += 7;
        self.enter()?;
        let key = self.cow()?;
        if !b[self.i..].starts_with(br#","value":"#) {
            return None;
        }
        self.i += 9;
        let value = self.any_value()?;
        if b.get(self.i) != Some(&b'}') {
            return None;
        }
        self.i += 1;
        self.depth -= 1;
        Some(KeyValue { key, value })
    }

    fn any_value(&mut self) -> Option<AnyValue<'a>> {
        let (at, depth) = (self.i, self.depth);
        // `{"stringValue":"…"}`, the common value, without looking its field up.
        if self.b[at..].starts_with(br#"{"stringValue":""#) {
            self.i += 15;
            if let Some(v) = self.cow() {
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(AnyValue::Str(v));
                }
            }
            (self.i, self.depth) = (at, depth);
        }
        let mut seen = 0;
        let mut value = AnyValue::Absent;
        self.object(|s, k| {
            let v = match k {
                b"stringValue" => {
                    once(&mut seen, 1)?;
                    if s.null()? {
                        None
                    } else {
                        Some(AnyValue::Str(s.cow()?))
                    }
                }
                b"intValue" => {
                    once(&mut seen, 2)?;
                    s.opt_num()?.map(AnyValue::Int)
                }
                b"doubleValue" => {
                    once(&mut seen, 4)?;
                    s.opt_num()?.map(AnyValue::Double)
                }
                b"boolValue" => {
                    once(&mut seen, 8)?;
                    match s.peek()? {
                        b'n' => s.literal(b"null").map(|_| None)?,
                        b't' => s.literal(b"true").map(|_| Some(AnyValue::Bool(true)))?,
                        b'f' => s.literal(b"false").map(|_| Some(AnyValue::Bool(false)))?,
                        _ => return None,
                    }
                }
                b"arrayValue" => {
                    once(&mut seen, 16)?;
                    s.opt_raw()?.map(AnyValue::Raw)
                }
                b"kvlistValue" => {
                    once(&mut seen, 32)?;
                    s.opt_raw()?.map(AnyValue::Raw)
                }
                b"bytesValue" => {
                    once(&mut seen, 64)?;
                    s.opt_raw()?.map(AnyValue::Raw)
                }
                _ => return s.skip(),
            };
            if let Some(v) = v {
                value.offer(v);
            }
            Some(())
        })?;
        Some(value)
    }

    /// A `resource` object: its attributes' span.
    fn resource(&mut self) -> Option<Span> {
        let mut seen = 0;
        let mut attrs = Span::default();
        self.object(|s, k| match k {
            b"attributes" => {
                once(&mut seen, 1)?;
                attrs = s.attributes()?;
                Some(())
            }
            _ => s.skip(),
        })?;
        Some(attrs)
    }

    /// An element of `resourceLogs` or `resourceMetrics`: its resource's attributes, and its
    /// children (the elements of `children`, each read by `child`), whose span in their vector
    /// `count` measures.
    fn resource_and(
        &mut self,
        children: &[u8],
        child: fn(&mut Self) -> Option<()>,
        count: fn(&Flat<'a>) -> usize,
    ) -> Option<FlatResource> {
        let mut seen = 0;
        let mut attrs = Span::default();
        let first = count(&self.f);
        self.object(|s, k| {
            if k == b"resource" {
                once(&mut seen, 1)?;
                attrs = s.resource()?;
                Some(())
            } else if k == children {
                once(&mut seen, 2)?;
                s.array(child)
            } else {
                s.skip()
            }
        })?;
        let children = Span::new(first, count(&self.f));
        Some(FlatResource { attrs, children })
    }

    fn resource_logs(&mut self) -> Option<()> {
        let r = self.resource_and(b"scopeLogs", Self::scope_logs, |f| f.scopes.len())?;
        self.f.log_resources.push(r);
        Some(())
    }

    fn scope_logs(&mut self) -> Option<()> {
        let mut seen = 0;
        let mut name = Cow::Borrowed("");
        let mut records = Span::default();
        self.object(|s, k| match k {
            b"scope" => {
                once(&mut seen, 1)?;
                name = s.scope()?;
                Some(())
            }
            b"logRecords" => {
                once(&mut seen, 2)?;
                let start = s.f.logs.len();
                s.array(Self::log_record)?;
                records = Span::new(start, s.f.logs.len());
                Some(())
            }
            _ => s.skip(),
        })?;
        self.f.scopes.push(FlatScope { name, records });
        Some(())
    }

    /// A `scope` object: its name.
    fn scope(&mut self) -> Option<Cow<'a, str>> {
        let mut seen = 0;
        let mut name = Cow::Borrowed("");
        self.object(|s, k| match k {
            b"name" => {
                once(&mut seen, 1)?;
                name = s.cow()?;
                Some(())
            }
            _ => s.skip(),
        })?;
        Some(name)
    }

    fn log_record(&mut self) -> Option<()> {
        let mut seen = 0;
        let mut r = FlatLog::default();
        self.object(|s, k| {
            match k {
                b"timeUnixNano" => {
                    once(&mut seen, 1)?;
                    r.time_unix_nano = s.opt_num()?;
                }
                b"observedTimeUnixNano" => {
                    once(&mut seen, 2)?;
                    r.observed_time_unix_nano = s.opt_num()?;
                }
                b"body" => {
                    once(&mut seen, 4)?;
                    if !s.null()? {
                        r.body = Some(s.any_value()?);
                    }
                }
                b"attributes" => {
                    once(&mut seen, 8)?;
                    r.attrs = s.attributes()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        self.f.logs.push(r);
        Some(())
    }

    fn resource_metrics(&mut self) -> Option<()> {
        let r = self.resource_and(b"scopeMetrics", Self::scope_metrics, |f| f.metrics.len())?;
        self.f.metric_resources.push(r);
        Some(())
    }

    fn scope_metrics(&mut self) -> Option<()> {
        let mut seen = 0;
        self.object(|s, k| match k {
            b"metrics" => {
                once(&mut seen, 1)?;
                s.array(Self::metric)
            }
            _ => s.skip(),
        })
    }

    fn metric(&mut self) -> Option<()> {
        let mut seen = 0;
        let mut name = Cow::Borrowed("");
        // sum, gauge, histogram, exponentialHistogram, summary
        let mut lists: [Option<PointList<'a>>; 5] = Default::default();
        self.object(|s, k| {
            let slot = match k {
                b"name" => {
                    once(&mut seen, 1)?;
                    name = s.cow()?;
                    return Some(());
                }
                b"sum" => 0,
                b"gauge" => 1,
                b"histogram" => 2,
                b"exponentialHistogram" => 3,
                b"summary" => 4,
                _ => return s.skip(),
            };
            once(&mut seen, 2 << slot)?;
            if !s.null()? {
                lists[slot] = Some(s.points()?);
            }
            Some(())
        })?;
        let chosen = choose(&lists);
        self.f.metrics.push(FlatMetric { name, chosen });
        Some(())
    }

    /// A point list: its points' span and its aggregation temporality.
    fn points(&mut self) -> Option<PointList<'a>> {
        let mut seen = 0;
        let mut points = Span::default();
        let mut temporality = None;
        self.object(|s, k| {
            match k {
                b"dataPoints" => {
                    once(&mut seen, 1)?;
                    let start = s.f.points.len();
                    s.array(Self::data_point)?;
                    points = Span::new(start, s.f.points.len());
                }
                b"aggregationTemporality" => {
                    once(&mut seen, 2)?;
                    temporality = s.opt_num()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some((points, temporality))
    }

    fn data_point(&mut self) -> Option<()> {
        let mut seen = 0;
        let mut p = FlatPoint::default();
        self.object(|s, k| {
            match k {
                b"attributes" => {
                    once(&mut seen, 1)?;
                    p.attrs = s.attributes()?;
                }
                b"startTimeUnixNano" => {
                    once(&mut seen, 2)?;
                    p.start_time_unix_nano = s.opt_num()?;
                }
                b"timeUnixNano" => {
                    once(&mut seen, 4)?;
                    p.time_unix_nano = s.opt_num()?;
                }
                b"asDouble" => {
                    once(&mut seen, 8)?;
                    p.as_double = s.opt_num()?;
                }
                b"asInt" => {
                    once(&mut seen, 16)?;
                    p.as_int = s.opt_num()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        self.f.points.push(p);
        Some(())
    }
}

#[cfg(test)]
mod tests;
