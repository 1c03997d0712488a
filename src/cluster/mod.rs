//! The pool: membership, bully election, assignment of elements to servers.

pub mod assignment;
pub mod election;
