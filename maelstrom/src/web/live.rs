//! The live dashboard of `maelstrom test --web`: one page (`live.html`) that follows the run
//! through server-sent events, and the endpoint its controls post to.
//!
//! - `GET /`: the page.
//! - `GET /events`: a server-sent event stream, one `snapshot` event every [`TICK`]
//!   ([`LiveHub::snapshot`]: phase, op counts, per-node state, messages per type, the latest
//!   monitor events since the last snapshot, the verdict once there is one).
//! - `GET /api/snapshot?since=N`: one snapshot as JSON, for scripts.
//! - `POST /api/god` with `{"action": "kill" | "restart" | "pause" | "resume" | "partition" |
//!   "heal" | "stop", "nodes": [...]}`: a fault by hand ([`LiveHub::command`]); 200 with what was
//!   queued, 409 with why not.
//!
//! Server-sent events rather than a websocket: the data flows one way, the browser reconnects
//! by itself, and axum serves them with no extra crate. Snapshots are built when a page asks,
//! so with no page open the dashboard costs the run nothing.

use super::{page, script_json, Server};
use crate::run::live::{GodCommand, LiveHub};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The page template; `__DATA__` is replaced once.
const TEMPLATE: &str = include_str!("live.html");

/// How often an open page gets a snapshot: often enough to feel live, rarely enough that reading
/// the journal stays a small share of the router's time.
pub const TICK: Duration = Duration::from_millis(500);

/// Starts the dashboard's server on `addr` for the run behind `hub`.
pub fn start(addr: SocketAddr, hub: Arc<LiveHub>) -> std::io::Result<Server> {
    Server::spawn(addr, router(hub), "web")
}

/// The dashboard's routes.
pub fn router(hub: Arc<LiveHub>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/favicon.ico", get(super::no_icon))
        .route("/api/snapshot", get(snapshot))
        .route("/api/god", post(god))
        .with_state(hub)
}

async fn index(State(hub): State<Arc<LiveHub>>) -> Response {
    let first = hub.snapshot(0);
    page(TEMPLATE.replacen("__DATA__", &script_json(&first), 1))
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn snapshot(State(hub): State<Arc<LiveHub>>, Query(q): Query<Since>) -> Json<Value> {
    Json(hub.snapshot(q.since))
}

async fn god(State(hub): State<Arc<LiveHub>>, Json(cmd): Json<GodCommand>) -> Response {
    match hub.command(cmd) {
        Ok(done) => (StatusCode::OK, Json(json!({"ok": done}))).into_response(),
        Err(why) => (StatusCode::CONFLICT, Json(json!({"error": why}))).into_response(),
    }
}

/// Counts the page as open for as long as its stream lives.
struct Open(Arc<LiveHub>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.page(false);
    }
}

async fn events(
    State(hub): State<Arc<LiveHub>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    hub.page(true);
    let open = Open(hub);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stream ends after the snapshot carrying the verdict, so the page's connection closes
    // cleanly before the server stops.
    let stream = stream::unfold(
        (open, ticks, 0u64, false),
        |(open, mut ticks, since, done)| async move {
            if done {
                return None;
            }
            ticks.tick().await;
            let snap = open.0.snapshot(since);
            let next = snap["next-seq"].as_u64().unwrap_or(since);
            let done = !snap["verdict"].is_null();
            let event = Event::default().event("snapshot").data(snap.to_string());
            Some((Ok(event), (open, ticks, next, done)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
