//! The objects a window reads, kept compactly: a window of a backfill of small objects holds
//! millions of them. Per object 24 bytes (its size, where its name is, its directory and its
//! location) and its name's bytes in one buffer shared by all; each directory and location is
//! held once. What else the listing told of an object (etag, time) went to the objects file as
//! it was listed.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::source::Location;

/// The objects to read, in the order they are pushed (then sorted by key per location).
#[derive(Default)]
pub struct Tasks {
    locations: Vec<Arc<Location>>,
    dirs: Vec<Box<str>>,
    names: String,
    items: Vec<Item>,
}

#[derive(Clone, Copy)]
struct Item {
    size: u64,
    /// The name's bytes: `names[name_at..name_at + name_len]`.
    name_at: u32,
    dir: u32,
    name_len: u16,
    location: u16,
}

/// One object to read: its store, key and size.
#[derive(Clone, Copy)]
pub struct Task<'a> {
    pub location: &'a Arc<Location>,
    dir: &'a str,
    name: &'a str,
    pub size: u64,
}

impl Tasks {
    /// Adds object `key` (a path in `location`'s store) of `size` bytes. Objects of one
    /// directory come together and share its name; so do those of one location.
    pub fn push(&mut self, location: &Arc<Location>, key: &str, size: u64) -> Result<()> {
        if !self
            .locations
            .last()
            .is_some_and(|l| Arc::ptr_eq(l, location))
        {
            self.locations.push(location.clone());
        }
        let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
        if self.dirs.last().is_none_or(|d| &**d != dir) {
            self.dirs.push(dir.into());
        }
        let too_many = || {
            Error::usage(format!(
                "{} objects in one window ({} bytes of names) are more than a window can hold: \
                 set a smaller window_days",
                self.items.len(),
                self.names.len()
            ))
        };
        let item = Item {
            size,
            name_at: u32::try_from(self.names.len()).map_err(|_| too_many())?,
            dir: u32::try_from(self.dirs.len() - 1).map_err(|_| too_many())?,
            name_len: u16::try_from(name.len())
                .map_err(|_| Error::Other(format!("object name longer than 64 KiB: {key}")))?,
            location: u16::try_from(self.locations.len() - 1)
                .map_err(|_| Error::usage("more than 65,535 input locations"))?,
        };
        if self.names.len() + name.len() > u32::MAX as usize {
            return Err(too_many());
        }
        self.names.push_str(name);
        self.items.push(item);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Object `i`.
    pub fn get(&self, i: usize) -> Task<'_> {
        self.task(&self.items[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = Task<'_>> {
        self.items.iter().map(|it| self.task(it))
    }

    fn task(&self, it: &Item) -> Task<'_> {
        let at = it.name_at as usize;
        Task {
            location: &self.locations[it.location as usize],
            dir: &self.dirs[it.dir as usize],
            name: &self.names[at..at + it.name_len as usize],
            size: it.size,
        }
    }

    /// Sorts the objects from `first` on by key (without building the keys).
    pub fn sort_from(&mut self, first: usize) {
        let mut items = std::mem::take(&mut self.items);
        items[first..].sort_unstable_by(|a, b| Task::key_order(&self.task(a), &self.task(b)));
        self.items = items;
    }

    /// Gives back what the buffers reserved beyond their contents.
    pub fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
        self.names.shrink_to_fit();
        self.dirs.shrink_to_fit();
    }
}

impl Task<'_> {
    /// The object's key.
    pub fn key(&self) -> String {
        if self.dir.is_empty() {
            self.name.to_string()
        } else {
            format!("{}/{}", self.dir, self.name)
        }
    }

    /// Orders tasks by key.
    fn key_order(a: &Task, b: &Task) -> Ordering {
        fn bytes<'t>(t: &Task<'t>) -> impl Iterator<Item = &'t u8> {
            let sep: &[u8] = if t.dir.is_empty() { b"" } else { b"/" };
            t.dir.as_bytes().iter().chain(sep).chain(t.name.as_bytes())
        }
        bytes(a).cmp(bytes(b))
    }

    /// The object's path in its store.
    pub fn path(&self) -> object_store::path::Path {
        object_store::path::Path::parse(self.key()).expect("a key the store listed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_keys_sizes_and_locations_and_sort_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Location::parse(dir.path().to_str().unwrap(), false).unwrap());
        let b = Arc::new(Location::parse(dir.path().to_str().unwrap(), false).unwrap());
        let mut t = Tasks::default();
        t.push(&a, "x/y/2.json", 20).unwrap();
        t.push(&a, "x/y/1.json", 10).unwrap();
        t.push(&a, "x/1.json", 30).unwrap();
        t.push(&a, "top.json", 40).unwrap();
        t.push(&b, "x/y/0.json", 50).unwrap();
        t.sort_from(0);
        let keys: Vec<_> = t.iter().map(|t| (t.key(), t.size)).collect();
        // "x/1.json" < "x/y/…": '1' sorts before 'y', byte by byte over the whole key.
        assert_eq!(
            keys,
            [
                ("top.json".to_string(), 40),
                ("x/1.json".to_string(), 30),
                ("x/y/0.json".to_string(), 50),
                ("x/y/1.json".to_string(), 10),
                ("x/y/2.json".to_string(), 20),
            ]
        );
        assert!(Arc::ptr_eq(t.get(2).location, &b));
        assert!(Arc::ptr_eq(t.get(0).location, &a));
        assert_eq!(t.get(3).path().as_ref(), "x/y/1.json");
        assert_eq!(t.locations.len(), 2);
        assert_eq!(t.dirs.len(), 4, "x/y, x, (root), x/y of the second location");
    }
}
