//! Watch streams: initial events, replay from a resourceVersion, selector-aware event
//! translation, bookmarks, server-side timeouts, and 410 Gone as an ERROR event.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::SinkExt;
use futures::channel::mpsc as fmpsc;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::form::{self, Form};
use crate::status::ApiError;
use crate::store::{EventType, State, StoredEvent};
use crate::verbs::{Selection, Target, present};

/// Options of one watch request.
#[derive(Clone)]
pub struct WatchParams {
    pub selection: Selection,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    pub form: Form,
    pub bookmark_interval: Duration,
}

struct Emitter {
    t: Target,
    p: WatchParams,
    tx: fmpsc::Sender<Result<Bytes, Infallible>>,
    last_rv: u64,
}

impl Emitter {
    fn object(&self, obj: &Value) -> Value {
        if self.p.form == Form::Metadata {
            return form::partial(obj);
        }
        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if let Some(tbl) =
            self.p
                .form
                .table(&self.t.rt, &self.t.version, std::iter::once(obj), rv, None)
        {
            return tbl;
        }
        if self.t.version == self.t.rt.storage_version() && !self.t.rt.is_alias() {
            obj.clone()
        } else {
            present(&self.t.rt, &self.t.version, obj)
        }
    }

    async fn send(&mut self, kind: &str, object: Value) -> bool {
        let mut line =
            serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }

    /// Translate one stored event through the selection, as apiserver's filtered watch does.
    async fn event(&mut self, ev: &StoredEvent) -> bool {
        self.last_rv = self.last_rv.max(ev.rv);
        let sel = &self.p.selection;
        let now_matches = sel.matches(&ev.object);
        let kind = match ev.kind {
            EventType::Added => now_matches.then_some("ADDED"),
            EventType::Deleted => now_matches.then_some("DELETED"),
            EventType::Modified => {
                let was = ev.old.as_ref().is_some_and(|o| sel.matches(o));
                match (was, now_matches) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        };
        match kind {
            Some(k) => {
                let obj = self.object(&ev.object);
                self.send(k, obj).await
            }
            None => true,
        }
    }

    async fn bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let mut md = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            md["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let obj = json!({
            "kind": self.t.rt.kind,
            "apiVersion": self.t.rt.api_version(&self.t.version),
            "metadata": md,
        });
        self.send("BOOKMARK", obj).await
    }
}

/// Start a watch; the answer streams until timeout, shutdown, a dropped client or
/// `close_watches`.
pub fn start(
    state: Arc<Mutex<State>>,
    t: Target,
    p: WatchParams,
    shutdown: CancellationToken,
) -> Result<Response, ApiError> {
    let rv_param = p
        .resource_version
        .clone()
        .filter(|s| !s.is_empty() && s != "0");
    let since = match &rv_param {
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
        None => None,
    };
    let send_initial = since.is_none() || p.send_initial_events;
    let (tx, rx) = fmpsc::channel::<Result<Bytes, Infallible>>(64);
    let (initial, replay, mut events, current_rv, expired) = {
        let mut st = state.lock().expect("store lock");
        let current_rv = st.rv;
        let initial: Vec<Arc<Value>> = if send_initial {
            st.collection(&t.rt.key())
                .map(|c| {
                    c.range(t.namespace.as_deref(), None)
                        .filter(|(_, o)| p.selection.matches(o))
                        .map(|(_, o)| o.clone())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let from = if send_initial { None } else { since };
        match st.subscribe(&t.rt.key(), t.namespace.as_deref(), from) {
            Ok((replay, rx)) => (initial, replay, Some(rx), current_rv, None),
            Err(e) => (initial, Vec::new(), None, current_rv, Some(e.oldest)),
        }
    };
    let mut em = Emitter {
        t,
        p,
        tx,
        last_rv: since.unwrap_or(0),
    };
    tokio::spawn(async move {
        if let Some(oldest) = expired {
            let status = ApiError::gone(format!(
                "too old resource version: {} ({})",
                since.unwrap_or(0),
                oldest
            ))
            .to_status();
            em.send("ERROR", status).await;
            return;
        }
        for obj in &initial {
            let o = em.object(obj);
            if !em.send("ADDED", o).await {
                return;
            }
        }
        em.last_rv = em.last_rv.max(current_rv);
        if em.p.send_initial_events && em.p.bookmarks && !em.send_initial_end(current_rv).await {
            return;
        }
        for ev in &replay {
            if !em.event(ev).await {
                return;
            }
        }
        let Some(rx) = events.as_mut() else { return };
        let deadline = em.p.timeout.map(|d| tokio::time::Instant::now() + d);
        let mut ticker = tokio::time::interval(em.p.bookmark_interval);
        ticker.tick().await;
        loop {
            let sleep_until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => if !em.event(&ev).await { return },
                    None => return,
                },
                _ = ticker.tick() => {
                    if em.tx.is_closed() {
                        return;
                    }
                    if em.p.bookmarks {
                        let rv = state.lock().expect("store lock").rv;
                        while let Ok(ev) = rx.try_recv() {
                            if !em.event(&ev).await { return }
                        }
                        let rv = rv.max(em.last_rv);
                        em.last_rv = rv;
                        if !em.bookmark(rv, false).await { return }
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = shutdown.cancelled() => return,
            }
        }
    });
    let body = Body::from_stream(rx);
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

impl Emitter {
    async fn send_initial_end(&mut self, rv: u64) -> bool {
        self.bookmark(rv, true).await
    }
}
