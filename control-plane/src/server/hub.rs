//! State shared by the gRPC services: the store, the current bundle (a watch channel every
//! Watch stream follows), the live event feed, which nodes are connected, and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use vigil_proto::v1::{Event, PolicyBundle};

use super::fleet::Fleet;
use super::metrics::Metrics;
use super::store::{PolicyRecord, StoreHandle};

/// Events a TailEvents subscriber may fall behind by before its stream ends with an error.
pub const TAIL_BUFFER: usize = 4096;

pub struct Hub {
    pub store: StoreHandle,
    pub metrics: Arc<Metrics>,
    /// Dynamic blocks, intel and the correlator.
    pub fleet: Fleet,
    policy: watch::Sender<Option<Arc<PolicyBundle>>>,
    events: broadcast::Sender<Arc<Event>>,
    /// Open Watch streams per node id.
    connections: Mutex<HashMap<String, usize>>,
    shutdown: watch::Sender<bool>,
}

pub fn bundle(record: &PolicyRecord) -> PolicyBundle {
    PolicyBundle {
        version: record.version.to_string(),
        sha256: record.sha256.clone(),
        json: record.json.clone(),
        created_unix_ms: record.created_unix_ms,
    }
}

impl Hub {
    pub fn new(store: StoreHandle, metrics: Arc<Metrics>, current: Option<&PolicyRecord>) -> Hub {
        metrics
            .policy_version
            .set(current.map(|r| r.version).unwrap_or(0));
        let (policy, _) = watch::channel(current.map(|r| Arc::new(bundle(r))));
        let (events, _) = broadcast::channel(TAIL_BUFFER);
        let (shutdown, _) = watch::channel(false);
        Hub {
            store,
            metrics,
            fleet: Fleet::default(),
            policy,
            events,
            connections: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Makes `record` the bundle every Watch stream sends next.
    pub fn publish_policy(&self, record: &PolicyRecord) {
        self.metrics.policy_version.set(record.version);
        self.policy.send_replace(Some(Arc::new(bundle(record))));
    }

    pub fn policy_updates(&self) -> watch::Receiver<Option<Arc<PolicyBundle>>> {
        self.policy.subscribe()
    }

    pub fn publish_event(&self, event: Event) {
        // No subscribers is not an error.
        let _ = self.events.send(Arc::new(event));
    }

    pub fn event_feed(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks `node_id` connected until the returned guard is dropped (its stream closed).
    pub fn connect(self: &Arc<Self>, node_id: &str) -> Connection {
        let nodes = {
            let mut map = self.lock_connections();
            *map.entry(node_id.to_owned()).or_insert(0) += 1;
            map.len()
        };
        self.metrics.watch_streams.add(1);
        self.metrics.nodes_connected.set(nodes as i64);
        Connection {
            hub: Arc::clone(self),
            node_id: node_id.to_owned(),
        }
    }

    pub fn is_connected(&self, node_id: &str) -> bool {
        self.lock_connections().contains_key(node_id)
    }

    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Completes once shutdown has begun.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the hub is gone: stop as well.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// A node's open Watch stream.
pub struct Connection {
    hub: Arc<Hub>,
    node_id: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let nodes = {
            let mut map = self.hub.lock_connections();
            if let Some(n) = map.get_mut(&self.node_id) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.node_id);
                    self.hub.metrics.forget_node(&self.node_id);
                }
            }
            map.len()
        };
        self.hub.metrics.watch_streams.add(-1);
        self.hub.metrics.nodes_connected.set(nodes as i64);
        tracing::info!(node = %self.node_id, "watch stream closed");
    }
}

/// A server stream that ends when the server shuts down, ends after its first error, and
/// holds `guard` for as long as it lives.
pub struct LiveStream<S, G> {
    inner: S,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
    _guard: G,
    done: bool,
}

impl<S, G> LiveStream<S, G> {
    pub fn new(hub: &Hub, inner: S, guard: G) -> Self {
        LiveStream {
            inner,
            stopping: Box::pin(hub.stopping()),
            _guard: guard,
            done: false,
        }
    }
}

impl<S, G, T, E> Stream for LiveStream<S, G>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    G: Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.stopping.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;
    use tokio_stream::StreamExt;

    fn hub() -> Arc<Hub> {
        let store = StoreHandle::new(Store::open_in_memory().unwrap());
        Arc::new(Hub::new(store, Arc::new(Metrics::default()), None))
    }

    #[tokio::test]
    async fn live_streams_end_after_an_error_and_on_shutdown() {
        let hub = hub();
        let items: Vec<Result<u32, String>> = vec![Ok(1), Err("lagged".into()), Ok(2)];
        let mut stream = LiveStream::new(&hub, tokio_stream::iter(items), ());
        assert_eq!(stream.next().await, Some(Ok(1)));
        assert_eq!(stream.next().await, Some(Err("lagged".into())));
        assert_eq!(stream.next().await, None);

        let pending = tokio_stream::pending::<Result<u32, String>>();
        let connection = hub.connect("edge-1");
        assert!(hub.is_connected("edge-1"));
        assert_eq!(hub.metrics.nodes_connected.get(), 1);
        let mut stream = LiveStream::new(&hub, pending, connection);
        hub.shut_down();
        assert_eq!(stream.next().await, None);
        drop(stream);
        assert!(!hub.is_connected("edge-1"));
        assert_eq!(hub.metrics.watch_streams.get(), 0);
    }
}
