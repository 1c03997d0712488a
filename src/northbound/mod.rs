//! What emspool offers to systems outside the pool (northbound interfaces): device metrics
//! for Prometheus and the service discovery that finds them, and the event log published to
//! NATS JetStream.

pub(crate) mod devices;
pub(crate) mod jetstream;
pub(crate) mod sd;
pub(crate) mod stream;
