//! Assembles the tower stack of a [`Client`](super::Client).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::{builder::ClientBuilder, Client, ClientStats, Inner};
use crate::error::{BoxError, Error};

/// The type-erased stack: a request with an in-memory body to a fully read response.
pub(crate) type HttpService =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, BoxError>;

/// A response body was larger than the configured cap.
#[derive(Debug, thiserror::Error)]
#[error("response body is larger than {limit} bytes")]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: usize,
}

/// Handles on the layers' counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsHandles {}

impl StatsHandles {
    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats::default()
    }
}

pub(crate) fn build(b: ClientBuilder) -> Result<Client, Error> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| Error::config(format!("tls setup failed: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let hyper: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(https);
    let limit = b.settings.max_body_bytes;
    let svc = ServiceBuilder::new()
        .timeout(b.settings.request_timeout)
        .and_then(move |res: Response<_>| collect(res, limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::decompression::DecompressionLayer::new().gzip(true))
        .service(hyper)
        .map_err(BoxError::from);
    Ok(Client {
        inner: std::sync::Arc::new(Inner {
            env: b.env,
            client_id: b.creds.client_id().to_owned(),
            http: BoxCloneSyncService::new(svc),
            settings: b.settings,
            stats: StatsHandles::default(),
        }),
    })
}

async fn collect<B>(res: Response<B>, limit: usize) -> Result<Response<Bytes>, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let bytes = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            Box::new(BodyTooLarge { limit }) as BoxError
        } else {
            e
        }
    })?;
    Ok(Response::from_parts(parts, bytes.to_bytes()))
}
