//! netconfd behind a private sshd (placeholder, filled in below).
pub const NETCONF_USER: &str = "emspoolnc";
pub const NETCONF_PASSWORD: &str = "emspool-nc-pass";
pub struct Netconfd;
