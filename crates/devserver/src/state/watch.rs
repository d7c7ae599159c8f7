//! Change notification: one `tokio::sync::watch` channel per topic that someone is waiting on.
//!
//! A channel exists only while it has subscribers: the last [`Subscription`] to drop removes it, and a
//! write to a topic nobody watches costs one hash lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Topic;

#[derive(Default)]
pub(super) struct Hub {
    senders: Arc<Mutex<HashMap<Topic, watch::Sender<()>>>>,
}

impl Hub {
    pub(super) fn subscribe(&self, topics: &[Topic]) -> Subscription {
        let mut map = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let receivers = topics
            .iter()
            .map(|t| {
                let rx = match map.get(t) {
                    Some(tx) => tx.subscribe(),
                    None => {
                        let (tx, rx) = watch::channel(());
                        map.insert(t.clone(), tx);
                        rx
                    }
                };
                (t.clone(), rx)
            })
            .collect();
        Subscription {
            senders: Arc::clone(&self.senders),
            receivers,
        }
    }

    pub(super) fn notify(&self, topic: &Topic) {
        let map = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(topic) {
            tx.send_replace(());
        }
    }
}

/// A set of topics a blocking query waits on.
pub(crate) struct Subscription {
    senders: Arc<Mutex<HashMap<Topic, watch::Sender<()>>>>,
    receivers: Vec<(Topic, watch::Receiver<()>)>,
}

impl Subscription {
    /// Resolves when any of the topics is touched by a write after the subscription (or after the last
    /// call to `changed`) was made. Never resolves if there are no topics.
    pub(crate) async fn changed(&mut self) {
        if self.receivers.is_empty() {
            std::future::pending::<()>().await;
        }
        let futures = self
            .receivers
            .iter_mut()
            .map(|(_, rx)| Box::pin(rx.changed()));
        // A closed channel cannot happen while we hold the sender map; treat it as a change anyway.
        let _ = futures_util::future::select_all(futures).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let topics: Vec<Topic> = self.receivers.drain(..).map(|(t, _)| t).collect();
        let mut map = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        for t in topics {
            if map.get(&t).is_some_and(|tx| tx.receiver_count() == 0) {
                map.remove(&t);
            }
        }
    }
}
