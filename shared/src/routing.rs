//! A service's event handlers, by payload type, on one router: the shape of axum's handlers
//! (and of systeminit/si's naxum for NATS). A handler takes a batch of one kind's typed payloads
//! and applies it inside the consumer's transaction; the router decodes each event into its
//! type, and tells the inbox which subjects the service consumes.
//!
//! ```ignore
//! let routes = Routes::new(Handlers { .. }).on::<ProblemReported>().on::<ProblemClosed>();
//! runtime.consume(routes);
//! impl Handle<ProblemClosed> for Handlers { async fn handle(&self, conn, events) { .. } }
//! ```

use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::envelope::Event;
use crate::events::{EventKind, Payload};

/// An event as a handler gets it: its id, when it happened, and its typed data.
#[derive(Debug, Clone)]
pub struct Received<T> {
    pub id: Uuid,
    pub time: OffsetDateTime,
    pub data: T,
}

/// Applies a batch of events of kind `T::KIND` within the consumer's transaction; events it
/// causes go to the outbox on the same connection. An error rolls the whole batch back.
///
/// A batch holds each problem at most once (a problem's later events come in a later call, in
/// its producer's order), and each other subject at most once; other keys (a city, a round) may
/// repeat, so sum per key before a multi-row upsert.
pub trait Handle<T: Payload>: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        events: &[Received<T>],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// One problem an event is about, and where it stands in its producer's order for this
/// consumer: `needs` is the counter of the event it must follow among those this service
/// handles (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub problem_id: Uuid,
    pub seq: i64,
    pub needs: i64,
}

/// An event decoded into its type, waiting to be applied.
pub struct Decoded {
    pub kind: EventKind,
    pub positions: Vec<Position>,
    item: Box<dyn Any + Send>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the inbox needs of a router, whatever its handler type.
pub trait Dispatch: Send + Sync + 'static {
    /// The kinds of `producer` this service handles.
    fn kinds(&self, producer: &str) -> Vec<EventKind>;
    /// The event in its type; none when no handler takes its kind.
    fn decode(&self, event: &Event) -> Option<anyhow::Result<Decoded>>;
    /// Applies decoded events, all of `kind`.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        kind: EventKind,
        items: Vec<Decoded>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Called after a batch committed.
    fn committed(&self);
}

trait Route<H>: Send + Sync {
    fn kind(&self) -> EventKind;
    fn decode(&self, event: &Event, handled: &[&'static str]) -> anyhow::Result<Decoded>;
    fn apply<'a>(
        &'a self,
        handler: &'a H,
        conn: &'a mut PgConnection,
        items: Vec<Box<dyn Any + Send>>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

struct Typed<T>(PhantomData<fn() -> T>);

impl<H: Handle<T>, T: Payload> Route<H> for Typed<T> {
    fn kind(&self) -> EventKind {
        T::KIND
    }

    fn decode(&self, event: &Event, handled: &[&'static str]) -> anyhow::Result<Decoded> {
        let data = T::deserialize(&event.data)
            .map_err(|e| anyhow::anyhow!("event {} ({}) has unexpected data: {e}", event.id, event.event_type))?;
        let positions = data
            .stamps()
            .iter()
            .map(|s| Position { problem_id: s.problem_id, seq: s.seq, needs: s.needs(handled.iter().copied()) })
            .collect();
        let received = Received { id: event.id, time: event.time, data };
        Ok(Decoded { kind: T::KIND, positions, item: Box::new(received) })
    }

    fn apply<'a>(
        &'a self,
        handler: &'a H,
        conn: &'a mut PgConnection,
        items: Vec<Box<dyn Any + Send>>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let events: Vec<Received<T>> = items
                .into_iter()
                .map(|item| *item.downcast::<Received<T>>().expect("an item decoded by this route"))
                .collect();
            handler.handle(conn, &events).await
        })
    }
}

/// A service's handlers by payload type.
pub struct Routes<H> {
    handler: Arc<H>,
    routes: Vec<Box<dyn Route<H>>>,
    after_commit: Vec<Box<dyn Fn() + Send + Sync>>,
}

impl<H: Send + Sync + 'static> Routes<H> {
    pub fn new(handler: H) -> Self {
        Self { handler: Arc::new(handler), routes: Vec::new(), after_commit: Vec::new() }
    }

    /// Routes events of `T`'s kind to `H`'s `Handle<T>`.
    pub fn on<T: Payload>(mut self) -> Self
    where
        H: Handle<T>,
    {
        assert!(self.routes.iter().all(|r| r.kind() != T::KIND), "{} routed twice", T::KIND.type_name);
        self.routes.push(Box::new(Typed::<T>(PhantomData)));
        self
    }

    /// Runs `f` after every batch this service's consumers commit (to wake a job that follows
    /// what they wrote).
    pub fn after_commit(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.after_commit.push(Box::new(f));
        self
    }

    /// The producers whose events this service handles.
    pub fn producers(&self) -> BTreeSet<&'static str> {
        self.routes.iter().map(|r| r.kind().producer).collect()
    }

    fn route(&self, type_name: &str) -> Option<&dyn Route<H>> {
        self.routes.iter().find(|r| r.kind().type_name == type_name).map(|r| r.as_ref())
    }
}

impl<H: Send + Sync + 'static> Dispatch for Routes<H> {
    fn kinds(&self, producer: &str) -> Vec<EventKind> {
        self.routes.iter().map(|r| r.kind()).filter(|k| k.producer == producer).collect()
    }

    fn decode(&self, event: &Event) -> Option<anyhow::Result<Decoded>> {
        let route = self.route(&event.event_type)?;
        let producer = route.kind().producer;
        let handled: Vec<&'static str> =
            self.routes.iter().map(|r| r.kind()).filter(|k| k.producer == producer).map(|k| k.name).collect();
        Some(route.decode(event, &handled))
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        kind: EventKind,
        items: Vec<Decoded>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        let route = self.route(kind.type_name).expect("a decoded kind has a route");
        route.apply(&self.handler, conn, items.into_iter().map(|d| d.item).collect())
    }

    fn committed(&self) {
        for f in &self.after_commit {
            f();
        }
    }
}
