//! The in-memory object store: one collection per resource type, a single global
//! resourceVersion counter, a bounded event history per type, and the open watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::registry::{Registry, ResourceType, TypeKey};

/// What happened to an object, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change in a collection, kept in the history and fanned out to watchers.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The previous state, so selector-filtered watches can turn a MODIFIED into an
    /// ADDED or DELETED as the object enters or leaves the selection.
    pub old: Option<Arc<Value>>,
}

struct Watcher {
    tx: mpsc::UnboundedSender<Arc<StoredEvent>>,
    namespace: Option<String>,
}

/// Object key inside a collection: (namespace or "", name).
pub type ObjKey = (String, String);

/// All objects of one resource type.
#[derive(Default)]
pub struct Collection {
    pub objects: BTreeMap<ObjKey, Arc<Value>>,
    history: VecDeque<Arc<StoredEvent>>,
    /// Events up to this resourceVersion may have been dropped from the history.
    compacted_through: u64,
    watchers: Vec<Watcher>,
}

impl Collection {
    /// Objects of one namespace (or all when `None`), in key order, from `start` (exclusive).
    pub fn range<'a>(
        &'a self,
        namespace: Option<&'a str>,
        after: Option<&'a ObjKey>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        use std::ops::Bound;
        let lower = match (after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .range((lower, Bound::Unbounded))
            .take_while(move |(k, _)| namespace.is_none_or(|ns| k.0 == ns))
    }
}

/// Replayed events and the receiver of later ones.
pub type Subscription = (
    Vec<Arc<StoredEvent>>,
    mpsc::UnboundedReceiver<Arc<StoredEvent>>,
);

/// Why a watch cannot start from the requested resourceVersion.
pub struct Expired {
    pub oldest: u64,
}

/// The whole mutable state, behind one mutex.
pub struct State {
    pub rv: u64,
    pub registry: Registry,
    pub collections: HashMap<TypeKey, Collection>,
    /// uid → where the object lives, for owner-reference garbage collection.
    pub uids: HashMap<String, (TypeKey, ObjKey)>,
    pub history_limit: usize,
    /// Set when a deletion or a deletionTimestamp may let the collector do work.
    pub gc_pending: bool,
    /// Next cluster IP to hand out to a Service.
    pub next_cluster_ip: u32,
}

pub fn obj_key(obj: &Value) -> ObjKey {
    let md = &obj["metadata"];
    (
        md["namespace"].as_str().unwrap_or("").to_string(),
        md["name"].as_str().unwrap_or("").to_string(),
    )
}

impl State {
    pub fn new(history_limit: usize) -> State {
        State {
            rv: 1,
            registry: Registry::with_builtins(),
            collections: HashMap::new(),
            uids: HashMap::new(),
            history_limit: history_limit.max(1),
            gc_pending: false,
            next_cluster_ip: 10,
        }
    }

    pub fn collection(&self, key: &TypeKey) -> Option<&Collection> {
        self.collections.get(key)
    }

    pub fn get(&self, key: &TypeKey, obj: &ObjKey) -> Option<&Arc<Value>> {
        self.collections.get(key)?.objects.get(obj)
    }

    /// Store `obj` (new or replacing), stamping a fresh resourceVersion.
    /// The object an ownerReference points at: the one with its uid, if it also has its
    /// name (apiserver's garbage collector looks owners up by name and checks the uid).
    pub fn owner_of(&self, owner_ref: &Value) -> Option<&(TypeKey, ObjKey)> {
        self.uids
            .get(owner_ref["uid"].as_str().unwrap_or(""))
            .filter(|(_, okey)| owner_ref["name"].as_str() == Some(okey.1.as_str()))
    }

    pub fn put(&mut self, rt: &ResourceType, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = obj_key(&obj);
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let obj = Arc::new(obj);
        let coll = self.collections.entry(rt.key()).or_default();
        let old = coll.objects.insert(key.clone(), obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        if !uid.is_empty() {
            self.uids.insert(uid, (rt.key(), key.clone()));
        }
        if obj["metadata"].get("deletionTimestamp").is_some() {
            self.gc_pending = true;
        }
        // A dependent whose owners are all gone is collected, as the real collector does
        // when it meets one.
        if let Some(refs) = obj["metadata"]["ownerReferences"].as_array()
            && !refs.is_empty()
            && refs.iter().all(|r| self.owner_of(r).is_none())
        {
            self.gc_pending = true;
        }
        self.record(&rt.key(), rv, kind, obj.clone(), old, &key.0);
        obj
    }

    /// Remove an object, emitting DELETED with a fresh resourceVersion.
    pub fn remove(&mut self, key: &TypeKey, okey: &ObjKey) -> Option<Arc<Value>> {
        let old = self.collections.get_mut(key)?.objects.remove(okey)?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        if let Some(uid) = old["metadata"]["uid"].as_str() {
            self.uids.remove(uid);
        }
        let last = Arc::new(last);
        self.gc_pending = true;
        self.record(
            key,
            rv,
            EventType::Deleted,
            last.clone(),
            Some(old),
            &okey.0,
        );
        Some(last)
    }

    fn record(
        &mut self,
        key: &TypeKey,
        rv: u64,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
        namespace: &str,
    ) {
        let limit = self.history_limit;
        let coll = self.collections.entry(key.clone()).or_default();
        let ev = Arc::new(StoredEvent {
            rv,
            kind,
            object,
            old,
        });
        coll.history.push_back(ev.clone());
        while coll.history.len() > limit {
            if let Some(dropped) = coll.history.pop_front() {
                coll.compacted_through = dropped.rv;
            }
        }
        coll.watchers.retain(|w| {
            if w.namespace.as_deref().is_some_and(|ns| ns != namespace) {
                return !w.tx.is_closed();
            }
            w.tx.send(ev.clone()).is_ok()
        });
    }

    /// Register a watcher. With `since`, replays retained events after it (or fails with
    /// `Expired` when they are gone); without, the caller sends the current objects itself.
    pub fn subscribe(
        &mut self,
        key: &TypeKey,
        namespace: Option<&str>,
        since: Option<u64>,
    ) -> Result<Subscription, Expired> {
        let coll = self.collections.entry(key.clone()).or_default();
        let mut replay = Vec::new();
        if let Some(since) = since {
            if since < coll.compacted_through {
                return Err(Expired {
                    oldest: coll.compacted_through + 1,
                });
            }
            replay = coll
                .history
                .iter()
                .filter(|e| e.rv > since)
                .filter(|e| {
                    namespace
                        .is_none_or(|ns| e.object["metadata"]["namespace"].as_str() == Some(ns))
                })
                .cloned()
                .collect();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        coll.watchers.push(Watcher {
            tx,
            namespace: namespace.map(str::to_string),
        });
        Ok((replay, rx))
    }

    /// Drop every open watch; clients see their streams end.
    pub fn close_watches(&mut self) {
        for coll in self.collections.values_mut() {
            coll.watchers.clear();
        }
    }

    /// Forget all retained events, as an etcd compaction does: watches from any older
    /// resourceVersion then get 410 Gone.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for coll in self.collections.values_mut() {
            coll.history.clear();
            coll.compacted_through = rv;
        }
    }

    pub fn open_watches(&self) -> usize {
        self.collections
            .values()
            .map(|c| c.watchers.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }

    /// Drop a type's objects, history and watches (its CRD went away).
    pub fn drop_collection(&mut self, key: &TypeKey) {
        if let Some(coll) = self.collections.remove(key) {
            for obj in coll.objects.values() {
                if let Some(uid) = obj["metadata"]["uid"].as_str() {
                    self.uids.remove(uid);
                }
            }
        }
    }

    pub fn namespace_exists(&self, ns: &str) -> Option<&Arc<Value>> {
        self.get(
            &(String::new(), "namespaces".to_string()),
            &(String::new(), ns.to_string()),
        )
    }
}
