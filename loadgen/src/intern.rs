//! Shared decoding. A thousand simulated Envoys of one mesh receive the same
//! clusters, load assignments and route configurations byte for byte; the
//! [`Interner`] decodes each distinct resource (same type URL, same bytes)
//! once and hands every client the same [`Resource`] (an `Arc` inside), so
//! the fleet holds one decoded copy of the mesh instead of one per client.
//!
//! The table is keyed by a hash of the type URL and bytes and keeps the
//! bytes to compare on a hit (a hash collision never hands out the wrong
//! resource). An entry lives while some client holds its resource: entries
//! only the table holds are pruned whenever the table has doubled since the
//! last prune (and on [`Interner::prune`]). Undecodable bytes are never
//! interned: the caller gets the [`DecodeError`] and NACKs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use envoy_types::pb::google::protobuf::Any;

use crate::state::{
    CLUSTER_TYPE, DecodeError, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, Resource, decode,
};

/// The table never prunes below this many entries.
const MIN_PRUNE_AT: usize = 1024;

/// Counters of an [`Interner`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InternStats {
    /// Lookups answered from the table (no decode).
    pub hits: u64,
    /// Resources decoded (and interned).
    pub decodes: u64,
    /// Entries in the table now (some may be unused until the next prune).
    pub entries: usize,
}

/// One distinct resource.
#[derive(Debug)]
struct Entry {
    bytes: Box<[u8]>,
    /// Of the type URL the bytes came with (the variant says which).
    resource: Resource,
}

/// The decoded types, compared instead of type URL strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Listener,
    Route,
    Endpoint,
}

impl Kind {
    fn of_type(type_url: &str) -> Option<Self> {
        match type_url {
            CLUSTER_TYPE => Some(Self::Cluster),
            LISTENER_TYPE => Some(Self::Listener),
            ROUTE_TYPE => Some(Self::Route),
            ENDPOINT_TYPE => Some(Self::Endpoint),
            _ => None,
        }
    }

    fn of(resource: &Resource) -> Option<Self> {
        match resource {
            Resource::Cluster(_) => Some(Self::Cluster),
            Resource::Listener(_) => Some(Self::Listener),
            Resource::Route(_) => Some(Self::Route),
            Resource::Endpoint(_) => Some(Self::Endpoint),
            Resource::Raw(_) => None,
        }
    }
}

/// The keys are hashes already: hashing them again would be wasted work.
#[derive(Debug, Default, Clone, Copy)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are u64); fold anything else.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByHash = HashMap<u64, Vec<Entry>, BuildHasherDefault<PreHashed>>;

#[derive(Debug, Default)]
struct Table {
    by_hash: ByHash,
    entries: usize,
    prune_at: usize,
    hits: u64,
    decodes: u64,
}

impl Table {
    fn find(&self, hash: u64, kind: Kind, bytes: &[u8]) -> Option<&Resource> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|e| Kind::of(&e.resource) == Some(kind) && *e.bytes == *bytes)
            .map(|e| &e.resource)
    }

    /// Drops the entries no client holds any more.
    fn prune(&mut self) {
        self.by_hash.retain(|_, entries| {
            entries.retain(|e| e.resource.holders() > 1);
            !entries.is_empty()
        });
        self.entries = self.by_hash.values().map(Vec::len).sum();
        self.prune_at = (2 * self.entries).max(MIN_PRUNE_AT);
    }
}

/// Decodes each distinct resource once and shares it; see the module docs.
#[derive(Debug, Default)]
pub struct Interner {
    table: Mutex<Table>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A poisoned table still holds whole entries: inserts are one push.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`decode`], shared: `any` (which must be of `type_url`) decoded, the
    /// same `Arc`s for the same bytes. Types the client does not decode are
    /// returned raw and not interned.
    pub fn decode(&self, type_url: &str, any: &Any) -> Result<Resource, DecodeError> {
        let Some(kind) = Kind::of_type(type_url).filter(|_| any.type_url == type_url) else {
            return decode(type_url, any);
        };
        let hash = hash_of(type_url, &any.value);
        {
            let mut table = self.table();
            if let Some(resource) = table.find(hash, kind, &any.value).cloned() {
                table.hits += 1;
                return Ok(resource);
            }
        }
        // Decoded outside the lock; another client may race us to it, and
        // then both keep the first one interned.
        let resource = decode(type_url, any)?;
        let mut table = self.table();
        if let Some(existing) = table.find(hash, kind, &any.value).cloned() {
            table.hits += 1;
            return Ok(existing);
        }
        table.decodes += 1;
        table.entries += 1;
        table.by_hash.entry(hash).or_default().push(Entry {
            bytes: any.value.clone().into_boxed_slice(),
            resource: resource.clone(),
        });
        if table.entries > table.prune_at {
            table.prune();
        }
        Ok(resource)
    }

    /// Drops the entries no client holds any more.
    pub fn prune(&self) {
        self.table().prune();
    }

    pub fn stats(&self) -> InternStats {
        let table = self.table();
        InternStats {
            hits: table.hits,
            decodes: table.decodes,
            entries: table.entries,
        }
    }
}

fn hash_of(type_url: &str, bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    type_url.hash(&mut hasher);
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::util::pack_any;

    fn mk_cluster_any(name: &str) -> Any {
        pack_any(Cluster {
            name: name.to_string(),
            ..Default::default()
        })
    }

    fn cluster(resource: &Resource) -> &Arc<Cluster> {
        match resource {
            Resource::Cluster(c) => c,
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn same_bytes_give_the_same_arc_and_decode_once() {
        let interner = Interner::new();
        let a = interner.decode(CLUSTER_TYPE, &mk_cluster_any("a")).unwrap();
        let b = interner.decode(CLUSTER_TYPE, &mk_cluster_any("a")).unwrap();
        assert!(Arc::ptr_eq(cluster(&a), cluster(&b)));
        assert_eq!(cluster(&a).name, "a");
        let stats = interner.stats();
        assert_eq!((stats.decodes, stats.hits, stats.entries), (1, 1, 1));
    }

    #[test]
    fn different_bytes_give_different_resources() {
        let interner = Interner::new();
        let a = interner.decode(CLUSTER_TYPE, &mk_cluster_any("a")).unwrap();
        let b = interner.decode(CLUSTER_TYPE, &mk_cluster_any("b")).unwrap();
        assert!(!Arc::ptr_eq(cluster(&a), cluster(&b)));
        assert_eq!(cluster(&b).name, "b");
        assert_eq!(interner.stats().decodes, 2);
    }

    #[test]
    fn same_bytes_of_another_type_are_another_resource() {
        let interner = Interner::new();
        // Empty messages: the same (empty) bytes for both types.
        let cluster_any = pack_any(Cluster::default());
        let cla_any = pack_any(ClusterLoadAssignment::default());
        assert_eq!(cluster_any.value, cla_any.value);
        let c = interner.decode(CLUSTER_TYPE, &cluster_any).unwrap();
        let e = interner.decode(ENDPOINT_TYPE, &cla_any).unwrap();
        assert!(matches!(c, Resource::Cluster(_)));
        assert!(matches!(e, Resource::Endpoint(_)));
    }

    #[test]
    fn unused_entries_are_pruned_and_held_ones_kept() {
        let interner = Interner::new();
        let kept = interner
            .decode(CLUSTER_TYPE, &mk_cluster_any("kept"))
            .unwrap();
        let dropped = interner
            .decode(CLUSTER_TYPE, &mk_cluster_any("gone"))
            .unwrap();
        drop(dropped);
        interner.prune();
        assert_eq!(interner.stats().entries, 1);
        let again = interner
            .decode(CLUSTER_TYPE, &mk_cluster_any("kept"))
            .unwrap();
        assert!(Arc::ptr_eq(cluster(&kept), cluster(&again)));
        assert_eq!(interner.stats().decodes, 2, "kept is not decoded again");
    }

    #[test]
    fn the_table_prunes_itself_as_it_grows() {
        let interner = Interner::new();
        for i in 0..3 * MIN_PRUNE_AT {
            interner
                .decode(CLUSTER_TYPE, &mk_cluster_any(&i.to_string()))
                .unwrap();
        }
        assert!(interner.stats().entries <= MIN_PRUNE_AT + 1);
    }

    #[test]
    fn undecodable_bytes_are_an_error_and_not_interned() {
        let interner = Interner::new();
        let bad = Any {
            type_url: CLUSTER_TYPE.to_string(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(interner.decode(CLUSTER_TYPE, &bad).is_err());
        assert!(interner.decode(CLUSTER_TYPE, &bad).is_err());
        assert_eq!(interner.stats(), InternStats::default());
        let wrong = mk_cluster_any("a");
        assert!(matches!(
            interner.decode(ENDPOINT_TYPE, &wrong),
            Err(DecodeError::WrongType { .. })
        ));
    }
}
