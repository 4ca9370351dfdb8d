//! Who did it (contract 3.5): each record's identity candidate, and the order in which a
//! session's candidates compete (roster alias, e-mail, API key name, install id, nothing).

use crate::decode::model::{sym, Dict};
use crate::schema::UNATTRIBUTED_MEMBER;

/// Priority of the first raw identity kind (`user.email`); roster hits rank 0..=3 before it.
pub(super) const RAW: u8 = 4;

/// 3.5 step 2 for one record. Candidates order by priority (roster alias by the rank of the
/// attribute, then e-mail, API key name, install id, nothing); between two of one priority, a
/// roster hit by the roster's order, a raw value by its earliest record and then the smaller
/// value. That order does not depend on the order objects are read in, or on which window
/// reads them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Candidate {
    pub(super) prio: u8,
    /// The roster index (roster hits) or the record's time (raw values).
    pub(super) at: i64,
    pub(super) name: Box<str>,
}

/// A candidate borrowing its identity from a batch's dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CandidateRef<'a> {
    pub(super) prio: u8,
    pub(super) at: i64,
    pub(super) name: &'a str,
}

impl Candidate {
    pub(super) fn as_ref(&self) -> CandidateRef<'_> {
        CandidateRef {
            prio: self.prio,
            at: self.at,
            name: &self.name,
        }
    }
}

impl CandidateRef<'_> {
    pub(super) fn to_owned(self) -> Candidate {
        Candidate {
            prio: self.prio,
            at: self.at,
            name: self.name.into(),
        }
    }
}

/// The candidate of one record from its four identity values (`user.email`, `api_key.name`,
/// `user.account_uuid`, `user.id`, as ids of `from`).
pub(super) fn candidate<'a>(
    ids: [u32; 4],
    time_ns: i64,
    from: &'a Dict,
    roster_of: &[Option<u32>],
) -> CandidateRef<'a> {
    if let Some((p, m)) = ids
        .iter()
        .enumerate()
        .find_map(|(p, &id)| roster_of[id as usize].map(|m| (p as u8, m)))
    {
        return CandidateRef {
            prio: p,
            at: m as i64,
            name: "",
        };
    }
    let (kind, name) = if ids[0] != sym::NONE {
        (0, from.resolve(ids[0]))
    } else if ids[1] != sym::NONE {
        (1, from.resolve(ids[1]))
    } else if ids[3] != sym::NONE {
        (2, from.resolve(ids[3]))
    } else {
        (3, UNATTRIBUTED_MEMBER)
    };
    CandidateRef {
        prio: RAW + kind,
        at: if kind == 3 { 0 } else { time_ns },
        name,
    }
}
