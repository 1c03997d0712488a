//! The SNMP protocol stack: the polling client (snmp2 sessions, GETBULK walks), trap and inform
//! decoding, the USM engine of record for SNMPv3 informs, and the trap senders' clocks
//! (`timeliness`: replay protection).

pub(crate) mod client;
pub(crate) mod timeliness;
pub(crate) mod trap;
pub(crate) mod usm;

/// Applies proptest's `(position, byte, op)` edits to a datagram: op 0 overwrites a byte, 1 cuts
/// the rest off, 2 inserts; positions wrap. The decoders' robustness tests share it.
#[cfg(test)]
fn mutate(b: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
    for &(pos, byte, op) in edits {
        if b.is_empty() {
            break;
        }
        let i = pos % b.len();
        match op {
            0 => b[i] = byte,
            1 => b.truncate(i),
            _ => b.insert(i, byte),
        }
    }
}
