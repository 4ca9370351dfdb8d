//! One OTLP-JSON line as the decoder walks it: every list of the document in one vector per
//! kind, a parent naming its children by index span. Both parsers build it — the OTLP scanner
//! (`scan`) directly, serde (`wire`) through [`Flat::from_doc`] — so one walk serves both.

use std::borrow::Cow;

use super::values::{AnyValue, Num};
use super::wire::{Doc, KeyValue, Points};
use crate::decode::model::{CUMULATIVE, DELTA};

/// Positions `start..end` in one of [`Flat`]'s vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub(super) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A resource: its attributes, and its children (scopes of logs, or metrics).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FlatResource {
    pub(super) attrs: Span,
    pub(super) children: Span,
}

#[derive(Debug, Default)]
pub(super) struct FlatScope<'a> {
    pub(super) name: Cow<'a, str>,
    pub(super) records: Span,
}

#[derive(Debug, Default)]
pub(super) struct FlatLog<'a> {
    pub(super) time_unix_nano: Option<Num<'a>>,
    pub(super) observed_time_unix_nano: Option<Num<'a>>,
    pub(super) body: Option<AnyValue<'a>>,
    pub(super) attrs: Span,
}

/// The points a metric contributes: those of its sum, else its gauge, else its histogram,
/// exponential histogram or summary (activity only, values unread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chosen {
    pub(super) points: Span,
    pub(super) temporality: u8,
    /// Whether the points' values are read (sums and gauges).
    pub(super) value_points: bool,
}

#[derive(Debug, Default)]
pub(super) struct FlatMetric<'a> {
    pub(super) name: Cow<'a, str>,
    pub(super) chosen: Option<Chosen>,
}

#[derive(Debug, Default)]
pub(super) struct FlatPoint<'a> {
    pub(super) attrs: Span,
    pub(super) start_time_unix_nano: Option<Num<'a>>,
    pub(super) time_unix_nano: Option<Num<'a>>,
    pub(super) as_double: Option<Num<'a>>,
    pub(super) as_int: Option<Num<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct Flat<'a> {
    /// Whether the line has `resourceLogs` / `resourceMetrics` (not absent, not null).
    pub(super) has_logs: bool,
    pub(super) has_metrics: bool,
    pub(super) attrs: Vec<KeyValue<'a>>,
    /// Children: spans of `scopes`.
    pub(super) log_resources: Vec<FlatResource>,
    pub(super) scopes: Vec<FlatScope<'a>>,
    pub(super) logs: Vec<FlatLog<'a>>,
    /// Children: spans of `metrics` (the metrics of all the resource's scopes, in order).
    pub(super) metric_resources: Vec<FlatResource>,
    pub(super) metrics: Vec<FlatMetric<'a>>,
    pub(super) points: Vec<FlatPoint<'a>>,
}

/// One of a metric's point lists as both parsers read it: its points, and its aggregation
/// temporality.
pub(super) type PointList<'a> = (Span, Option<Num<'a>>);

/// Which of a metric's point lists count (`lists` in the order sum, gauge, histogram,
/// exponential histogram, summary), and their temporality: a sum's own, else delta.
pub(super) fn choose(lists: &[Option<PointList<'_>>; 5]) -> Option<Chosen> {
    let [sum, gauge, others @ ..] = lists;
    if let Some((points, t)) = sum {
        let temporality = match t.as_ref().and_then(Num::as_i64) {
            Some(2) => CUMULATIVE,
            _ => DELTA,
        };
        return Some(Chosen {
            points: *points,
            temporality,
            value_points: true,
        });
    }
    if let Some((points, _)) = gauge {
        return Some(Chosen {
            points: *points,
            temporality: DELTA,
            value_points: true,
        });
    }
    let (points, _) = others.iter().flatten().next()?;
    Some(Chosen {
        points: *points,
        temporality: DELTA,
        value_points: false,
    })
}

impl<'a> Flat<'a> {
    /// Moves `attrs` to the end of the attribute vector.
    fn push_attrs(&mut self, attrs: Vec<KeyValue<'a>>) -> Span {
        let start = self.attrs.len();
        self.attrs.extend(attrs);
        Span::new(start, self.attrs.len())
    }

    /// The document serde parsed, flattened.
    pub(super) fn from_doc(doc: Doc<'a>) -> Flat<'a> {
        let mut f = Flat {
            has_logs: doc.resource_logs.is_some(),
            has_metrics: doc.resource_metrics.is_some(),
            ..Flat::default()
        };
        for rl in doc.resource_logs.into_iter().flatten() {
            let attrs = f.push_attrs(rl.resource.attributes);
            let first = f.scopes.len();
            for sl in rl.scope_logs {
                let start = f.logs.len();
                for lr in sl.log_records {
                    let attrs = f.push_attrs(lr.attributes);
                    f.logs.push(FlatLog {
                        time_unix_nano: lr.time_unix_nano,
                        observed_time_unix_nano: lr.observed_time_unix_nano,
                        body: lr.body,
                        attrs,
                    });
                }
                let records = Span::new(start, f.logs.len());
                f.scopes.push(FlatScope {
                    name: sl.scope.name,
                    records,
                });
            }
            let children = Span::new(first, f.scopes.len());
            f.log_resources.push(FlatResource { attrs, children });
        }
        for rm in doc.resource_metrics.into_iter().flatten() {
            let attrs = f.push_attrs(rm.resource.attributes);
            let first = f.metrics.len();
            for m in rm.scope_metrics.into_iter().flat_map(|sm| sm.metrics) {
                let lists = [
                    m.sum,
                    m.gauge,
                    m.histogram,
                    m.exponential_histogram,
                    m.summary,
                ]
                .map(|p| p.map(|p| f.push_points(p)));
                let chosen = choose(&lists);
                f.metrics.push(FlatMetric {
                    name: m.name,
                    chosen,
                });
            }
            let children = Span::new(first, f.metrics.len());
            f.metric_resources.push(FlatResource { attrs, children });
        }
        f
    }

    fn push_points(&mut self, p: Points<'a>) -> PointList<'a> {
        let start = self.points.len();
        for dp in p.data_points {
            let attrs = self.push_attrs(dp.attributes);
            self.points.push(FlatPoint {
                attrs,
                start_time_unix_nano: dp.start_time_unix_nano,
                time_unix_nano: dp.time_unix_nano,
                as_double: dp.as_double,
                as_int: dp.as_int,
            });
        }
        (
            Span::new(start, self.points.len()),
            p.aggregation_temporality,
        )
    }

    pub(super) fn attrs(&self, s: Span) -> &[KeyValue<'a>] {
        &self.attrs[s.range()]
    }
}
