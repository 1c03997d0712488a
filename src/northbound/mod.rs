//! What emspool offers to other systems about the elements it polls (northbound interfaces):
//! device metrics for Prometheus and the service discovery that finds them.

pub mod devices;
pub mod sd;
mod stream;
