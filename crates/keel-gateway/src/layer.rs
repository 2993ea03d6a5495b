use std::sync::Arc;

use tower::Layer;

use crate::forwarded::{socket_addr_extension, PeerAddrFn};
use crate::{Forwarding, Gateway, Upstream};

/// Layer that applies [`Gateway`], forwarding every request to one [`Upstream`].
///
/// # Clone
///
/// The upstream and settings are shared by every clone and every service it makes.
#[derive(Debug, Clone)]
pub struct GatewayLayer {
    settings: Arc<Settings>,
}

/// What every [`Gateway`] made by one layer shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) upstream: Upstream,
    pub(crate) forwarding: Forwarding,
    pub(crate) peer_addr: PeerAddrFn,
}

impl Settings {
    pub(crate) fn new(upstream: Upstream) -> Self {
        Settings {
            upstream,
            forwarding: Forwarding::default(),
            peer_addr: socket_addr_extension,
        }
    }
}

impl GatewayLayer {
    /// Forwards requests to `upstream`, replacing the caller's forwarding headers
    /// ([`Forwarding::Replace`]) with the peer address of a [`SocketAddr`](std::net::SocketAddr)
    /// request extension, if any.
    pub fn new(upstream: Upstream) -> Self {
        GatewayLayer {
            settings: Arc::new(Settings::new(upstream)),
        }
    }

    /// Sets how the caller's `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are treated
    /// (default [`Forwarding::Replace`]).
    pub fn forwarding(mut self, forwarding: Forwarding) -> Self {
        Arc::make_mut(&mut self.settings).forwarding = forwarding;
        self
    }

    /// Sets where the caller's peer address is read from (default: a
    /// [`SocketAddr`](std::net::SocketAddr) extension). Behind axum's
    /// `into_make_service_with_connect_info::<SocketAddr>()`, read its `ConnectInfo`:
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use keel_gateway::{GatewayLayer, Upstream};
    /// # #[derive(Clone)]
    /// # struct ConnectInfo<T>(T);
    ///
    /// let upstream = Upstream::new(&"https://api.example.com".parse().unwrap()).unwrap();
    /// let layer = GatewayLayer::new(upstream)
    ///     .peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| *a));
    /// ```
    pub fn peer_addr(mut self, peer_addr: PeerAddrFn) -> Self {
        Arc::make_mut(&mut self.settings).peer_addr = peer_addr;
        self
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway::from_settings(inner, Arc::clone(&self.settings))
    }
}
