//! The public listener: mTLS from other sidecars, intentions, then plain TCP to the local app.
//!
//! Stages, one module each, run in order for every accepted connection:
//! [`accept`] (listener loop, drain, task tracking) → [`tls`] (handshake with a bound, client
//! certificate required, peer identity) → [`authz`] (intention decision) → [`forward`] (dial the
//! app, splice).

mod accept;
mod authz;
mod forward;
mod tls;

pub(crate) use accept::serve;
