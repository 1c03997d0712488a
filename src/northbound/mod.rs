//! Where this server's events go beyond its own event log, for consumers outside the pool.

pub(crate) mod jetstream;
