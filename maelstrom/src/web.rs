//! The runner's web server: `maelstrom serve` ([`serve`]) and the live dashboard of
//! `maelstrom test --web` ([`live`]).
//!
//! Built on axum (the tokio project's router over hyper): HTTP/1 only, one small current-thread
//! tokio runtime on a thread of its own, so the server shares nothing with the run's threads but
//! the [`crate::run::live::LiveHub`] it reads. Pages are self-contained HTML templates (markup,
//! styles and script inline, as `report.html`), filled in with JSON fetched from the server.
//!
//! Both bind to loopback by default: a non-loopback address needs `--public` (`serve`) or
//! `--web-public` (`test --web`), since anyone who reaches it can read every run, and on the live
//! page kill the nodes.

pub mod live;
pub mod serve;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// A web server running on its own thread; dropping it stops the server (open connections,
/// such as a page's event stream, are closed) and joins the thread.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` now (so a taken port is an error here, and port 0 is resolved) and serves
    /// `app` on a thread named `name`.
    pub fn spawn(addr: SocketAddr, app: axum::Router, name: &str) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("web server: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        r = axum::serve(listener, app) => {
                            if let Err(e) = r {
                                tracing::error!("web server: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Dropping the runtime here ends every connection still open.
            })?;
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the actual port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops (for `maelstrom serve`, which runs until interrupted).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `/favicon.ico`: nothing (204), so that a browser's automatic request for it is not a 404
/// in the page's console.
async fn no_icon() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}

/// A page: HTML, never cached (the data behind it changes).
fn page(html: String) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// Escapes text for HTML (element content and quoted attributes).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script>` block: no `<` at all (it can only be inside strings, where `\u003c`
/// means the same), so neither `</script>` nor `<!--` can end or change the block.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let v = serde_json::json!({"s": "</script><!--"});
        assert!(!script_json(&v).contains('<'));
        let back: serde_json::Value = serde_json::from_str(&script_json(&v)).unwrap();
        assert_eq!(back, v);
    }
}
