//! Connecting to `vigil serve`: plain or TLS channel, bearer token on every call, and error
//! messages that say what went wrong in words.

use std::time::Duration;

use anyhow::{bail, Context};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use vigil_proto::v1::admin_service_client::AdminServiceClient;

use super::ServerArgs;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type AuthedChannel = InterceptedService<Channel, Bearer>;

pub struct Client {
    channel: Channel,
    bearer: Bearer,
}

impl Client {
    pub async fn connect(args: &ServerArgs) -> anyhow::Result<Client> {
        let token = match &args.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => args.token.as_ref().map(|t| t.trim().to_owned()),
        };
        let bearer = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .context("the token contains characters not allowed in a header")?,
            ),
            None => None,
        };

        let url = args.server.trim_end_matches('/');
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("`{url}` is not a valid server URL"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &args.ca {
                Some(path) => {
                    let pem = std::fs::read(path).with_context(|| {
                        format!("cannot read CA certificate {}", path.display())
                    })?;
                    tls.ca_certificate(Certificate::from_pem(pem))
                }
                None => tls.with_native_roots(),
            };
            endpoint = endpoint.tls_config(tls).context("TLS configuration")?;
        } else if args.ca.is_some() {
            bail!("--ca is for https:// servers; {url} is not one");
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to vigil serve at {url}"))?;
        Ok(Client {
            channel,
            bearer: Bearer(bearer),
        })
    }

    pub fn admin(&self) -> AdminServiceClient<AuthedChannel> {
        AdminServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(64 << 20)
    }
}

/// A refused or failed call, in words (with a hint for credential problems).
pub fn status_error(status: Status) -> anyhow::Error {
    let message = status.message();
    match status.code() {
        Code::Unauthenticated => anyhow::anyhow!(
            "not authenticated: {message} (give a token with --token, --token-file or VIGIL_TOKEN)"
        ),
        Code::PermissionDenied => anyhow::anyhow!("permission denied: {message}"),
        Code::InvalidArgument => anyhow::anyhow!("server refused the request: {message}"),
        Code::NotFound => anyhow::anyhow!("not found: {message}"),
        Code::FailedPrecondition => anyhow::anyhow!("refused: {message}"),
        Code::Unavailable => anyhow::anyhow!("vigil serve is unavailable: {message}"),
        Code::ResourceExhausted => anyhow::anyhow!("{message}"),
        code => anyhow::anyhow!("call failed ({code:?}): {message}"),
    }
}
