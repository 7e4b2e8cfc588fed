//! `vigil serve`: the control plane. gRPC (RuleService, EventService, AdminService) over
//! HTTP/2, optionally TLS; Prometheus metrics over HTTP/1.1; SQLite for everything durable.

pub mod alerting;
pub mod auth;
pub mod config;
pub mod correlator;
pub mod fleet;
pub mod fleet_admin;
pub mod fleet_store;
pub mod hub;
pub mod metrics;
pub mod service;
pub mod store;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use vigil_proto::v1::admin_service_server::AdminServiceServer;
use vigil_proto::v1::event_service_server::EventServiceServer;
use vigil_proto::v1::rule_service_server::RuleServiceServer;

use self::auth::AuthLayer;
use self::config::ServeConfig;
use self::hub::Hub;
use self::metrics::Metrics;
use self::store::{Store, StoreHandle};

/// How long shutdown waits for in-flight calls before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr (stdout carries only the "listening" lines), level from `RUST_LOG`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(config_path: &Path, log_format: LogFormat) -> anyhow::Result<()> {
    init_logging(log_format);
    let config = config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let database = config.database.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&database))
        .await
        .context("database task failed")?
        .with_context(|| format!("cannot open database {}", config.database.display()))?;
    let current = store.current_policy()?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let metrics = Arc::new(Metrics::default());
    let store = StoreHandle::new(store);
    let hub = Arc::new(Hub::new(
        store.clone(),
        Arc::clone(&metrics),
        current.as_ref(),
    ));
    fleet::load(&hub)
        .await
        .context("cannot load blocks and intel")?;
    fleet::follow_policy(&hub, current.as_ref()).await;
    let alerting = alerting::Alerting::open(
        config.alerting.clone(),
        store,
        Arc::clone(&metrics),
        crate::timefmt::now_unix_ms(),
    )
    .await
    .context("cannot load the alerting state")?;
    alerting::dispatcher::spawn(Arc::clone(&alerting), hub.shutdown_signal());

    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(tls) = &config.tls {
        let cert = std::fs::read(&tls.cert)
            .with_context(|| format!("cannot read TLS certificate {}", tls.cert.display()))?;
        let key = std::fs::read(&tls.key)
            .with_context(|| format!("cannot read TLS key {}", tls.key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("invalid TLS configuration")?;
    } else if !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "serving gRPC without TLS on a non-loopback address: tokens travel in clear text"
        );
    }

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {} (metrics)", config.metrics_listen))?;
    let metrics_addr = metrics_listener.local_addr()?;

    let router = builder
        .layer(AuthLayer::new(
            Arc::new(config.tokens),
            Arc::clone(&metrics),
        ))
        .add_service(RuleServiceServer::new(service::Rules {
            hub: Arc::clone(&hub),
        }))
        .add_service(EventServiceServer::new(service::Events {
            hub: Arc::clone(&hub),
            alerting: Arc::clone(&alerting),
        }))
        .add_service(
            AdminServiceServer::new(service::Admin {
                hub: Arc::clone(&hub),
                alerting: Arc::clone(&alerting),
            })
            // Reputation lists arrive in one call.
            .max_decoding_message_size(64 << 20),
        );
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));

    let metrics_task = tokio::spawn(metrics::serve(
        metrics_listener,
        Arc::clone(&metrics),
        hub.shutdown_signal(),
    ));
    let expiry_task = tokio::spawn(fleet::expire_blocks(Arc::clone(&hub)));
    let signal_hub = Arc::clone(&hub);
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_hub.shut_down();
    });

    tracing::info!(
        listen = %addr,
        metrics = %metrics_addr,
        tls = config.tls.is_some(),
        allow_remote = config.allow_remote,
        database = %config.database.display(),
        alert_rules = config.alerting.rules.len(),
        alert_receivers = config.alerting.receivers.len(),
        policy_version = current.as_ref().map(|r| r.version).unwrap_or(0),
        "vigil serve started"
    );
    // Whoever started us may have stopped reading stdout: a closed pipe must not kill the server.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "vigil serve listening on {addr}");
        let _ = writeln!(out, "metrics on {metrics_addr}");
        let _ = out.flush();
    }

    let server = router.serve_with_incoming_shutdown(incoming, hub.stopping());
    tokio::pin!(server);
    let served = tokio::select! {
        result = &mut server => result,
        _ = async {
            hub.stopping().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("calls still open after {DRAIN_TIMEOUT:?}; stopping anyway");
            Ok(())
        }
    };
    hub.shut_down();
    let _ = metrics_task.await;
    let _ = expiry_task.await;
    served.context("gRPC server failed")?;
    tracing::info!("vigil serve stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupt: shutting down");
    }
}
