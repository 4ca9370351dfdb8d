//! Dimensions (contract 5.5.1): the attributes (and roster columns) that name a session's team,
//! cost centre or the like, the attribute keys records carry for them, and the rule that picks
//! one value per (session, day).

use crate::decode::model::sym;
use crate::error::{Error, Result};

pub const ORGANIZATION_ID: &str = "organization.id";
pub const TERMINAL_TYPE: &str = "terminal.type";
/// Tags every run reads (for the API-shaped export, 5.6), at these positions.
pub const BASE_TAGS: [&str; 2] = [ORGANIZATION_ID, TERMINAL_TYPE];
/// The value of a dimension where neither telemetry nor roster gives one.
pub const NONE_VALUE: &str = "(none)";

/// One dimension of the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub name: String,
    /// Telemetry attribute keys, in order of preference.
    pub attributes: Vec<String>,
    /// The roster column used where the telemetry carries none.
    pub roster: Option<String>,
}

/// The run's dimensions, sorted by name, and the attribute keys records carry for them.
#[derive(Debug, Clone)]
pub struct Dimensions {
    pub dims: Vec<Dimension>,
    /// [`BASE_TAGS`], then every dimension attribute key once: the decoder's tags.
    pub keys: &'static [&'static str],
    /// Per dimension, the tag index of each of its attributes, in order of preference.
    pub key_of: Vec<Vec<usize>>,
}

impl Default for Dimensions {
    fn default() -> Self {
        Dimensions {
            dims: Vec::new(),
            keys: &BASE_TAGS,
            key_of: Vec::new(),
        }
    }
}

impl Dimensions {
    /// Checks and indexes the dimensions (a dimension needs attributes, a roster column or both).
    pub fn new(mut dims: Vec<Dimension>) -> Result<Dimensions> {
        dims.sort_by(|a, b| a.name.cmp(&b.name));
        let mut keys: Vec<String> = BASE_TAGS.iter().map(|s| s.to_string()).collect();
        let mut key_of = Vec::new();
        for d in &dims {
            if d.name.trim().is_empty() {
                return Err(Error::usage("a dimension needs a name"));
            }
            if d.attributes.is_empty() && d.roster.is_none() {
                return Err(Error::usage(format!(
                    "dimension {:?} needs `attributes`, `roster` or both",
                    d.name
                )));
            }
            let mut idx = Vec::new();
            for a in &d.attributes {
                if a.is_empty() {
                    return Err(Error::usage(format!(
                        "dimension {:?} names an empty attribute key",
                        d.name
                    )));
                }
                let i = match keys.iter().position(|k| k == a) {
                    Some(i) => i,
                    None => {
                        keys.push(a.clone());
                        keys.len() - 1
                    }
                };
                idx.push(i);
            }
            key_of.push(idx);
        }
        if keys.len() > 64 {
            return Err(Error::usage(
                "dimensions name more than 62 attribute keys in all",
            ));
        }
        // Lives as long as the run; the decoder's context stays a plain copyable value.
        let keys: &'static [&'static str] = if keys.len() == BASE_TAGS.len() {
            &BASE_TAGS
        } else {
            Box::leak(
                keys.into_iter()
                    .map(|k| &*Box::leak(k.into_boxed_str()))
                    .collect::<Vec<&'static str>>()
                    .into_boxed_slice(),
            )
        };
        Ok(Dimensions { dims, keys, key_of })
    }

    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// The roster columns the dimensions name.
    pub fn roster_columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.dims
            .iter()
            .filter_map(|d| d.roster.as_deref().map(|r| (d.name.as_str(), r)))
    }

    /// What the stored facts and tables depend on, for fingerprints.
    pub fn describe(&self) -> String {
        self.dims
            .iter()
            .map(|d| {
                format!(
                    "{}={}|{}",
                    d.name,
                    d.attributes.join(","),
                    d.roster.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The fact column holding a dimension's telemetry value of a (session, day).
pub fn fact_column(name: &str) -> String {
    format!("dim.{name}")
}

/// One record's candidate for a dimension: the first of its attributes present, the record's
/// value before the resource's; as (rank, value id), rank = 2 × position + (1 for resource).
/// `tags` are the record's `[record, resource]` ids per tag, `value` maps an id to the run's.
pub fn candidate(tags: &[u32], key_of: &[usize], value: impl Fn(u32) -> u32) -> Option<(u8, u32)> {
    key_of.iter().enumerate().find_map(|(pos, &k)| {
        [0, 1].into_iter().find_map(|side| {
            let id = value(tags[k * 2 + side]);
            (id != sym::NONE).then_some(((pos * 2 + side) as u8, id))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(name: &str, attrs: &[&str], roster: Option<&str>) -> Dimension {
        Dimension {
            name: name.into(),
            attributes: attrs.iter().map(|s| s.to_string()).collect(),
            roster: roster.map(String::from),
        }
    }

    #[test]
    fn keys_are_shared_and_follow_the_base_tags() {
        let d = Dimensions::new(vec![
            dim("team", &["team.id", "team"], Some("team")),
            dim("cost_center", &["cost_center", "team"], None),
        ])
        .unwrap();
        assert_eq!(d.dims[0].name, "cost_center", "sorted by name");
        assert_eq!(
            d.keys,
            &[
                ORGANIZATION_ID,
                TERMINAL_TYPE,
                "cost_center",
                "team",
                "team.id"
            ]
        );
        assert_eq!(d.key_of, vec![vec![2, 3], vec![4, 3]]);
    }

    #[test]
    fn a_dimension_without_attributes_or_roster_is_refused() {
        let e = Dimensions::new(vec![dim("team", &[], None)]).unwrap_err();
        assert!(
            e.to_string().contains("needs `attributes`, `roster`"),
            "{e}"
        );
    }

    #[test]
    fn candidate_takes_attribute_order_then_record_before_resource() {
        // tags: key0 [rec, res], key1 [rec, res]
        let id = |x: u32| x;
        assert_eq!(candidate(&[0, 0, 7, 8], &[0, 1], id), Some((2, 7)));
        assert_eq!(candidate(&[0, 5, 7, 8], &[0, 1], id), Some((1, 5)));
        assert_eq!(candidate(&[4, 5, 7, 8], &[0, 1], id), Some((0, 4)));
        assert_eq!(candidate(&[4, 5, 7, 8], &[1, 0], id), Some((0, 7)));
        assert_eq!(candidate(&[0, 0, 0, 0], &[1, 0], id), None);
    }
}
