//! OTLP values as the decoder reads them: a number that may be a JSON number or a decimal string
//! ([`Num`]), and an `AnyValue` held in one small enum, borrowed from the line.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A numeric JSON value as OTLP writes it: a number or a decimal string.
#[derive(Debug, Clone)]
pub(super) enum Num<'a> {
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Num<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Num<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num<'a>, E> {
                Ok(Num::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num<'a>, E> {
                Ok(i64::try_from(v)
                    .map(Num::Int)
                    .unwrap_or(Num::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num<'a>, E> {
                Ok(Num::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Num<'a>, E> {
                Ok(Num::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num<'a>, E> {
                Ok(Num::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num<'a>, E> {
                Ok(Num::Str(Cow::Owned(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num<'a>, E> {
                Ok(Num::Str(Cow::Borrowed("")))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Num<'_> {
    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(*i),
            Num::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Some(*f as i64)
            }
            Num::Float(_) => None,
            Num::Str(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(|f| Num::Float(f).as_i64()))
            }
        }
    }
    pub(super) fn as_f64(&self) -> Option<f64> {
        let f = match self {
            Num::Int(i) => *i as f64,
            Num::Float(f) => *f,
            Num::Str(s) => s.trim().parse::<f64>().ok()?,
        };
        f.is_finite().then_some(f)
    }
}

/// An OTLP `AnyValue`: one of its kinds, in 40 bytes rather than a field per kind (a record
/// carries a couple of dozen attributes, each decoded into one of these).
#[derive(Debug, Default)]
pub(super) enum AnyValue<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Int(Num<'a>),
    Double(Num<'a>),
    Bool(bool),
    /// `arrayValue`, `kvlistValue` or `bytesValue`, kept as JSON text.
    Raw(&'a str),
}

impl<'a> AnyValue<'a> {
    /// Which kind wins when a malformed value holds several.
    pub(super) fn rank(&self) -> u8 {
        match self {
            AnyValue::Absent => 0,
            AnyValue::Raw(_) => 1,
            AnyValue::Bool(_) => 2,
            AnyValue::Double(_) => 3,
            AnyValue::Int(_) => 4,
            AnyValue::Str(_) => 5,
        }
    }

    /// Takes `v` if it ranks above the kind held (a malformed value holding several kinds).
    pub(super) fn offer(&mut self, v: AnyValue<'a>) {
        if v.rank() > self.rank() {
            *self = v;
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AnyValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = AnyValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an OTLP AnyValue object")
            }
            fn visit_map<M: de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<AnyValue<'a>, M::Error> {
                let mut value = AnyValue::Absent;
                let mut seen = 0u8;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let (bit, v) = match key.as_ref() {
                        "stringValue" => (
                            1,
                            map.next_value::<Option<Cow<'a, str>>>()?.map(AnyValue::Str),
                        ),
                        "intValue" => (2, map.next_value::<Option<Num<'a>>>()?.map(AnyValue::Int)),
                        "doubleValue" => (
                            4,
                            map.next_value::<Option<Num<'a>>>()?.map(AnyValue::Double),
                        ),
                        "boolValue" => (8, map.next_value::<Option<bool>>()?.map(AnyValue::Bool)),
                        "arrayValue" => (
                            16,
                            map.next_value::<Option<&'a RawValue>>()?
                                .map(|r| AnyValue::Raw(r.get())),
                        ),
                        "kvlistValue" => (
                            32,
                            map.next_value::<Option<&'a RawValue>>()?
                                .map(|r| AnyValue::Raw(r.get())),
                        ),
                        "bytesValue" => (
                            64,
                            map.next_value::<Option<&'a RawValue>>()?
                                .map(|r| AnyValue::Raw(r.get())),
                        ),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if seen & bit != 0 {
                        return Err(de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    seen |= bit;
                    if let Some(v) = v {
                        value.offer(v);
                    }
                }
                Ok(value)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl AnyValue<'_> {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as text, for identity attributes that may come as numbers.
    pub(super) fn to_text(&self) -> Option<Cow<'_, str>> {
        match self {
            AnyValue::Str(s) => Some(Cow::Borrowed(s)),
            AnyValue::Int(n) | AnyValue::Double(n) => Some(match n {
                Num::Int(i) => Cow::Owned(i.to_string()),
                Num::Float(f) => Cow::Owned(f.to_string()),
                Num::Str(s) => Cow::Borrowed(s),
            }),
            _ => None,
        }
    }
    /// A numeric attribute from `stringValue`, `intValue` or `doubleValue`.
    pub(super) fn num(&self) -> Option<Num<'_>> {
        match self {
            AnyValue::Int(n) | AnyValue::Double(n) => Some(n.clone()),
            AnyValue::Str(s) => Some(Num::Str(Cow::Borrowed(s))),
            _ => None,
        }
    }
    pub(super) fn hash_into<H: Hasher>(&self, h: &mut H) {
        match self {
            AnyValue::Str(s) => (0u8, s.as_ref()).hash(h),
            AnyValue::Int(n) => match n.as_i64() {
                Some(i) => (1u8, i).hash(h),
                None => (5u8, format!("{n:?}")).hash(h),
            },
            AnyValue::Double(n) => (2u8, n.as_f64().map(f64::to_bits)).hash(h),
            AnyValue::Bool(b) => (3u8, *b).hash(h),
            AnyValue::Raw(r) => (4u8, *r).hash(h),
            AnyValue::Absent => {}
        }
    }
}
