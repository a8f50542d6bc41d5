//! Building and running the HTTP server: [`Application::build`] binds (port 0 is fine, tests
//! use it) and [`Application::run_until_stopped`] serves until the shutdown future resolves,
//! then shuts down in order: close WebSockets, drain requests, let runs finish, flush.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::ApiLimits;
use tokio::net::TcpListener;

use crate::app::{App, StartupError};
use crate::config::ServeArgs;
use crate::routes::{self, Guard};
use crate::submission::MAX_TOKENS_LIMIT;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    app: Arc<App>,
    router: axum::Router,
    grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Application {
    /// Opens storage, connects to Bedrock and binds the listener.
    pub async fn build(args: ServeArgs) -> Result<Application, StartupError> {
        let limits = ApiLimits {
            max_body_bytes: args.max_body_bytes,
            max_prompt_bytes: args.max_prompt_bytes,
            max_tokens: MAX_TOKENS_LIMIT,
        };
        if !args.addr.ip().is_loopback() && args.auth_token.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(StartupError::Config(format!(
                "listening on {} exposes the app beyond this machine: set an access token with --auth-token or APP_AUTH_TOKEN",
                args.addr
            )));
        }
        let app = Arc::new(App::build(&args.app, limits).await?);
        let listener = TcpListener::bind(args.addr)
            .await
            .map_err(|source| StartupError::Bind { addr: args.addr.to_string(), source })?;
        let addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: args.addr.to_string(), source })?;
        if let Some(cluster) = app.cluster() {
            cluster.announce(&addr.to_string()).await?;
        }
        let guard = Guard {
            allowed_origins: args
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
            allowed_hosts: allowed_hosts(&args, addr),
            token: args.auth_token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(Arc::from),
        };
        let router = routes::router(Arc::clone(&app), guard, &args.static_dir, args.max_body_bytes);
        let grace = Duration::try_from_secs_f64(args.shutdown_grace_secs.max(0.0)).unwrap_or(Duration::MAX);
        Ok(Application { listener, addr, app, router, grace })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The core, for tests and tools that drive it directly.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let closing = self.app.closing().clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: closing WebSockets and draining requests");
            closing.cancel();
        };
        axum::serve(crate::net::without_nagle(self.listener), self.router).with_graceful_shutdown(signal).await?;
        self.app.shutdown(self.grace).await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// The host names requests may name: loopback names, the bound address, `--allowed-host`s.
/// With an access token and no `--allowed-host`, any: a rebinding page cannot present the token.
fn allowed_hosts(args: &ServeArgs, addr: SocketAddr) -> Option<Vec<String>> {
    if args.auth_token.is_some() && args.allowed_hosts.is_empty() && !addr.ip().is_loopback() {
        return None;
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    hosts.extend(args.allowed_hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()));
    Some(hosts)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
