//! The objects a window reads, kept compactly: a window of a backfill of small objects holds
//! millions of them. Per object 16 bytes (its size, where its name is, its directory and its
//! location) and its name's bytes in blocks of 1 MiB shared by all (blocks, not one buffer: a
//! growing buffer is copied whole, and for a moment held twice); each directory and location is
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
    /// Names, none across two blocks.
    names: Vec<String>,
    items: Vec<Item>,
}

/// Bytes of a block of names.
const BLOCK: usize = 1 << 20;
/// Largest object size an item holds (1 TiB).
const MAX_SIZE: u64 = (1 << 40) - 1;

/// An object in 16 bytes: its name (block and offset: `BLOCK` times the block plus the offset),
/// its directory, its size (40 bits), the name's length and the location.
#[derive(Clone, Copy)]
struct Item {
    name_at: u32,
    dir: u32,
    size_low: u32,
    /// Size bits 32..40, then the name's length (16 bits), then the location (8 bits).
    rest: u32,
}

impl Item {
    fn size(&self) -> u64 {
        (self.size_low as u64) | (((self.rest & 0xff) as u64) << 32)
    }
    fn name_len(&self) -> usize {
        ((self.rest >> 8) & 0xffff) as usize
    }
    fn location(&self) -> usize {
        (self.rest >> 24) as usize
    }
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
        if self.locations.len() > 256 {
            return Err(Error::usage("more than 256 input locations"));
        }
        if size > MAX_SIZE {
            return Err(Error::Other(format!("object larger than 1 TiB: {key}")));
        }
        if name.len() > u16::MAX as usize {
            return Err(Error::Other(format!(
                "object name longer than 64 KiB: {key}"
            )));
        }
        // A block holds at most BLOCK bytes: names are found by their offset modulo BLOCK.
        if self
            .names
            .last()
            .is_none_or(|b| b.len() + name.len() > BLOCK)
        {
            self.names.push(String::with_capacity(BLOCK));
        }
        let block = self.names.len() - 1;
        let at = block * BLOCK + self.names[block].len();
        let (name_at, dir) = match (u32::try_from(at), u32::try_from(self.dirs.len() - 1)) {
            (Ok(a), Ok(d)) => (a, d),
            _ => {
                return Err(Error::usage(format!(
                    "{} objects in one window are more than it can hold: set a smaller window_days",
                    self.items.len()
                )))
            }
        };
        self.names[block].push_str(name);
        self.items.push(Item {
            name_at,
            dir,
            size_low: size as u32,
            rest: ((size >> 32) as u32)
                | ((name.len() as u32) << 8)
                | (((self.locations.len() - 1) as u32) << 24),
        });
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
        let (block, at) = (it.name_at as usize / BLOCK, it.name_at as usize % BLOCK);
        Task {
            location: &self.locations[it.location()],
            dir: &self.dirs[it.dir as usize],
            name: &self.names[block][at..at + it.name_len()],
            size: it.size(),
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
        if let Some(last) = self.names.last_mut() {
            last.shrink_to_fit();
        }
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
        assert_eq!(
            t.dirs.len(),
            4,
            "x/y, x, (root), x/y of the second location"
        );
    }

    #[test]
    fn names_across_blocks_and_sizes_past_32_bits_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(Location::parse(dir.path().to_str().unwrap(), false).unwrap());
        let mut t = Tasks::default();
        // 3.6 MB of names of 24 bytes, 43,690 to a block: four blocks, no name cut at a
        // block's end.
        let n = 150_000u64;
        for i in 0..n {
            t.push(&a, &format!("d/logs_{i:014}.json"), i << 22)
                .unwrap();
        }
        assert_eq!(t.names.len(), 4);
        for i in [0, 1, 43_689, 43_690, 87_379, 87_380, n - 1] {
            let task = t.get(i as usize);
            assert_eq!(task.key(), format!("d/logs_{i:014}.json"));
            assert_eq!(task.size, i << 22, "size of {i}");
        }
        assert!(t.push(&a, "d/huge.json", MAX_SIZE + 1).is_err());
    }
}
