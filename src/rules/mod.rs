//! Pure rules: what an answer means for an element's alarms. Input -> output, no I/O, no clock.

pub(crate) mod link;
pub(crate) mod netconf;
pub(crate) mod poll;
pub(crate) mod trap;

#[cfg(test)]
mod conformance;
