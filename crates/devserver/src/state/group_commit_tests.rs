//! Group commit: concurrent writers each get their own index, in order, and every acknowledged write is
//! in the log after a restart without a snapshot (what `kill -9` leaves).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use super::kv::KvEntry;
use super::{Mutation, Store, Topic};

#[test]
fn concurrent_writes_are_all_durable_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(Some(dir.path())).unwrap());
    let threads = 8;
    let per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..per_thread {
                    let key = format!("t{t}/k{i}");
                    let k = key.clone();
                    let (index, ()) = store
                        .write(move |tables, idx, plan| {
                            // Each plan sees every write ordered before it.
                            assert_eq!(idx, tables.index + 1);
                            let entry = KvEntry {
                                lock_index: 0,
                                key: k.clone(),
                                flags: 0,
                                value: None,
                                session: String::new(),
                                create_index: idx,
                                modify_index: idx,
                            };
                            plan.push(Mutation::PutKv(entry));
                            plan.touch(Topic::KvKey(k.clone()));
                            Ok::<_, String>(())
                        })
                        .unwrap();
                    acked.push((index, key));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(u64, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let indexes: BTreeSet<u64> = acked.iter().map(|(i, _)| *i).collect();
    let total = (threads * per_thread) as u64;
    assert_eq!(
        indexes,
        (1..=total).collect(),
        "one index per write, none skipped"
    );

    // A rejected plan and an empty plan change nothing and still answer.
    let rejected = store.write(|_, _, _| Err::<(), _>("no".to_owned()));
    assert!(matches!(rejected, Err(super::WriteError::Rejected(ref e)) if e == "no"));
    let (idx, ()) = store.write(|_, _, _| Ok::<_, String>(())).unwrap();
    assert_eq!(idx, total);

    drop(store);
    let store = Store::open(Some(dir.path())).unwrap();
    store.read(|t| {
        assert_eq!(t.index, total);
        for (index, key) in &acked {
            let entry = t.kv.get(key).unwrap();
            assert_eq!(entry.modify_index, *index, "{key}");
        }
    });
}
