//! A router that remembers its (method, path) pairs, so the OpenAPI test can
//! compare `aggregator/openapi.yaml` with the routes the code really serves
//! (axum's `Router` cannot list its routes).

use axum::Router;
use axum::handler::Handler;
use axum::routing::get;

/// An axum router plus the list of routes added through it.
pub struct RouteTable<S = ()> {
    router: Router<S>,
    routes: Vec<(&'static str, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        RouteTable { router: Router::new(), routes: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `GET path`.
    pub fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.routes.push(("get", path));
        self
    }

    /// Adds `path` with a method router serving `methods` (lower-case names).
    pub fn route(mut self, path: &'static str, methods: &[&'static str], router: axum::routing::MethodRouter<S>) -> Self {
        self.router = self.router.route(path, router);
        self.routes.extend(methods.iter().map(|m| (*m, path)));
        self
    }

    /// Provides the state, giving a stateless table.
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> RouteTable<S2> {
        RouteTable { router: self.router.with_state(state), routes: self.routes }
    }
}

impl RouteTable<()> {
    /// Adds every route of `other`.
    pub fn merge(mut self, other: RouteTable<()>) -> Self {
        self.router = self.router.merge(other.router);
        self.routes.extend(other.routes);
        self
    }

    /// The (lower-case method, path) pairs, in the order added.
    pub fn routes(&self) -> &[(&'static str, &'static str)] {
        &self.routes
    }

    /// The router.
    pub fn into_router(self) -> Router {
        self.router
    }
}
