//! NETCONF XML in and out, with quick-xml: a streaming walker with namespaces, and the
//! messages built on it (`<hello>`, `<rpc-reply>` with `<rpc-error>`, `<notification>`).
//!
//! The walker never builds a tree: it calls a [`Visit`] with the path of namespace + local
//! names at each element start and at each leaf (element without child elements), so a reply
//! costs one pass and the memory of its deepest path. Anything that is not well-formed XML
//! (mismatched or unclosed tags, undeclared prefixes or entities, a DTD, text outside the root,
//! bad UTF-8, nesting beyond [`MAX_DEPTH`]) is an [`XmlError`], never a panic.

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use std::fmt::Write as _;

pub const NS_BASE: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";
pub const NS_NOTIFICATION: &str = "urn:ietf:params:xml:ns:netconf:notification:1.0";
pub const NS_NC_NOTIFICATIONS: &str = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications";
pub const NS_SYSTEM: &str = "urn:ietf:params:xml:ns:yang:ietf-system";
pub const NS_INTERFACES: &str = "urn:ietf:params:xml:ns:yang:ietf-interfaces";
pub const NS_ALARMS: &str = "urn:ietf:params:xml:ns:yang:ietf-alarms";
pub const CAP_BASE_10: &str = "urn:ietf:params:netconf:base:1.0";
pub const CAP_BASE_11: &str = "urn:ietf:params:netconf:base:1.1";
pub const CAP_NOTIFICATION: &str = "urn:ietf:params:netconf:capability:notification:1.0";

/// Deeper nesting than this is refused (YANG data rarely goes past 20).
pub const MAX_DEPTH: usize = 128;
/// Leaves kept from one notification.
const MAX_NOTIFICATION_LEAVES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("unexpected message: {0}")]
    Unexpected(String),
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

/// An element on the path: its namespace (empty when unqualified) and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    pub name: String,
}

impl Node {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }
}

/// Receives the document as it is read. Paths start at the root element.
pub trait Visit {
    /// An element starts; `attrs` are given for the root element only.
    fn start(&mut self, _path: &[Node], _attrs: &[(String, String)]) {}
    /// An element without child elements ended, with its text (trimmed).
    fn leaf(&mut self, _path: &[Node], _text: &str) {}
    /// An element ended (after `leaf` for leaves).
    fn end(&mut self, _path: &[Node]) {}
}

/// Reads a whole document, calling `v`; fails on anything that is not well-formed.
pub fn walk(xml: &[u8], v: &mut impl Visit) -> Result<(), XmlError> {
    let text = std::str::from_utf8(xml).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
    let mut reader = NsReader::from_str(text);
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = true;
    cfg.check_end_names = true;
    let mut path: Vec<Node> = Vec::new();
    // Per open element: whether it had child elements.
    let mut has_children: Vec<bool> = Vec::new();
    let mut text = String::new();
    let mut root_done = false;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => {
                let ns = match event {
                    Event::Start(_) => Some(namespace(&ns)?),
                    _ => None,
                };
                (ns, event)
            }
            Err(e) => {
                return Err(malformed(format!(
                    "at byte {}: {e}",
                    reader.error_position()
                )));
            }
        };
        match event {
            Event::Start(start) => {
                if root_done {
                    return Err(malformed("more than one root element"));
                }
                if path.len() >= MAX_DEPTH {
                    return Err(malformed(format!("nesting deeper than {MAX_DEPTH}")));
                }
                let ns = ns.unwrap_or_default();
                let name = std::str::from_utf8(start.local_name().into_inner())
                    .map_err(malformed)?
                    .to_owned();
                if let Some(parent) = has_children.last_mut() {
                    *parent = true;
                }
                path.push(Node { ns, name });
                has_children.push(false);
                text.clear();
                let attrs = if path.len() == 1 {
                    attributes(&start)?
                } else {
                    Vec::new()
                };
                v.start(&path, &attrs);
            }
            Event::End(_) => {
                if has_children.pop() == Some(false) {
                    v.leaf(&path, text.trim());
                }
                v.end(&path);
                path.pop();
                text.clear();
                if path.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(malformed)?;
                if path.is_empty() {
                    if !s.trim().is_empty() {
                        return Err(malformed("text outside the root element"));
                    }
                } else {
                    text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if path.is_empty() {
                    return Err(malformed("CDATA outside the root element"));
                }
                text.push_str(&t.xml10_content().map_err(malformed)?);
            }
            Event::GeneralRef(r) => {
                if path.is_empty() {
                    return Err(malformed("reference outside the root element"));
                }
                match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => text.push(c),
                    None => {
                        let name = r.decode().map_err(malformed)?;
                        let rep = resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("undeclared entity &{name};")))?;
                        text.push_str(rep);
                    }
                }
            }
            Event::DocType(_) => return Err(malformed("DTDs are not allowed in NETCONF")),
            Event::Empty(_) => unreachable_empty()?,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !path.is_empty() {
        return Err(malformed(format!(
            "unclosed element <{}>",
            path[path.len() - 1].name
        )));
    }
    if !root_done {
        return Err(malformed("no root element"));
    }
    Ok(())
}

/// `expand_empty_elements` turns `<a/>` into start + end; keep the match total without panics.
fn unreachable_empty() -> Result<(), XmlError> {
    Err(malformed("internal: empty element not expanded"))
}

fn namespace(ns: &ResolveResult<'_>) -> Result<String, XmlError> {
    match ns {
        ResolveResult::Bound(n) => std::str::from_utf8(n.into_inner())
            .map(str::to_owned)
            .map_err(malformed),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(malformed(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(malformed)?;
        let key = std::str::from_utf8(a.key.local_name().into_inner())
            .map_err(malformed)?
            .to_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(malformed)?
            .into_owned();
        out.push((key, value));
    }
    Ok(out)
}

/// Escapes text for element content or attribute values.
#[cfg(any(test, feature = "testing"))]
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

// ---------------------------------------------------------------------------------------------
// <hello>

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    pub capabilities: Vec<String>,
    pub session_id: Option<u32>,
}

impl Hello {
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether a YANG module is announced (`...?module=NAME&...`) in the hello.
    pub fn has_module(&self, module: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| capability_module(c).is_some_and(|(m, _)| m == module))
    }

    /// Whether the server lists its modules in ietf-yang-library instead (YANG 1.1 modules
    /// are not announced in the hello).
    pub fn has_yang_library(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.starts_with("urn:ietf:params:netconf:capability:yang-library:"))
    }
}

/// `(module, revision)` of a module capability.
pub fn capability_module(cap: &str) -> Option<(&str, Option<&str>)> {
    let (_, query) = cap.split_once('?')?;
    let mut module = None;
    let mut revision = None;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("module", m)) => module = Some(m),
            Some(("revision", r)) => revision = Some(r),
            _ => {}
        }
    }
    module.map(|m| (m, revision))
}

/// A short form for operators: `:base:1.1`-style for IETF capabilities, `module@revision`
/// for modules, the URI otherwise.
pub fn short_capability(cap: &str) -> String {
    if let Some((m, rev)) = capability_module(cap) {
        return match rev {
            Some(r) => format!("{m}@{r}"),
            None => m.to_owned(),
        };
    }
    let cap = cap.split('?').next().unwrap_or(cap);
    match cap
        .strip_prefix("urn:ietf:params:netconf:capability:")
        .or_else(|| cap.strip_prefix("urn:ietf:params:netconf:"))
    {
        Some(rest) => format!(":{rest}"),
        None => cap.to_owned(),
    }
}

pub fn parse_hello(xml: &[u8]) -> Result<Hello, XmlError> {
    struct V {
        hello: Hello,
        root_ok: Option<bool>,
        bad_session: Option<String>,
    }
    impl Visit for V {
        fn start(&mut self, path: &[Node], _: &[(String, String)]) {
            if path.len() == 1 {
                self.root_ok = Some(path[0].is(NS_BASE, "hello"));
            }
        }
        fn leaf(&mut self, path: &[Node], text: &str) {
            match path {
                [_, c, cap]
                    if c.name == "capabilities" && cap.name == "capability" && !text.is_empty() =>
                {
                    self.hello.capabilities.push(text.to_owned());
                }
                [_, s] if s.name == "session-id" => match text.parse::<u32>() {
                    Ok(id) => self.hello.session_id = Some(id),
                    Err(_) => self.bad_session = Some(text.to_owned()),
                },
                _ => {}
            }
        }
    }
    let mut v = V {
        hello: Hello::default(),
        root_ok: None,
        bad_session: None,
    };
    walk(xml, &mut v)?;
    if v.root_ok != Some(true) {
        return Err(XmlError::Unexpected(format!(
            "expected <hello> in {NS_BASE}, got {}",
            preview(xml)
        )));
    }
    if let Some(s) = v.bad_session {
        return Err(XmlError::Unexpected(format!("bad session-id {s:?}")));
    }
    Ok(v.hello)
}

/// Our `<hello>`: base:1.0 and base:1.1 (the server picks chunked framing if it has 1.1).
pub fn client_hello() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<hello xmlns=\"{NS_BASE}\"><capabilities>\
         <capability>{CAP_BASE_10}</capability><capability>{CAP_BASE_11}</capability>\
         </capabilities></hello>"
    )
}

// ---------------------------------------------------------------------------------------------
// <rpc> and <rpc-reply>

/// `<rpc>` around an operation (already XML).
pub fn rpc(message_id: u64, operation: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rpc message-id=\"{message_id}\" xmlns=\"{NS_BASE}\">{operation}</rpc>"
    )
}

/// `<get>` with a subtree filter (XML, already escaped); none gets everything.
pub fn get(filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("<get><filter type=\"subtree\">{f}</filter></get>"),
        None => "<get/>".to_owned(),
    }
}

/// `<get-config>` of a datastore (`running`, `candidate`, `startup`) with a subtree filter.
#[cfg(any(test, feature = "testing"))]
pub fn get_config(source: &str, filter: Option<&str>) -> String {
    let source = escape(source);
    match filter {
        Some(f) => format!(
            "<get-config><source><{source}/></source><filter type=\"subtree\">{f}</filter></get-config>"
        ),
        None => format!("<get-config><source><{source}/></source></get-config>"),
    }
}

pub const CLOSE_SESSION: &str = "<close-session/>";

/// RFC 5277 `<create-subscription>` to the default `NETCONF` stream.
pub fn create_subscription() -> String {
    format!("<create-subscription xmlns=\"{NS_NOTIFICATION}\"/>")
}

/// One `<rpc-error>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RpcError {
    pub error_type: String,
    pub tag: String,
    pub severity: String,
    pub app_tag: Option<String>,
    pub path: Option<String>,
    pub message: Option<String>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.severity, self.tag, self.error_type)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " at {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    pub message_id: Option<String>,
    pub ok: bool,
    pub errors: Vec<RpcError>,
    /// Whether a `<data>` element came.
    pub data: bool,
}

impl Reply {
    /// Errors with severity `error` (warnings do not fail an operation).
    pub fn failed(&self) -> bool {
        self.errors.iter().any(|e| e.severity != "warning")
    }

    pub fn error_text(&self) -> String {
        let v: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        v.join("; ")
    }
}

/// Receives the content of `<data>`; paths start at the top-level data nodes.
pub trait DataVisit {
    fn start(&mut self, _path: &[Node]) {}
    fn leaf(&mut self, _path: &[Node], _text: &str) {}
}

/// Ignores the data.
pub struct NoData;
impl DataVisit for NoData {}

/// Parses an `<rpc-reply>`, streaming the data to `data`.
pub fn parse_reply(xml: &[u8], data: &mut impl DataVisit) -> Result<Reply, XmlError> {
    struct V<'a, D> {
        reply: Reply,
        root: Option<Node>,
        data: &'a mut D,
        err: Option<RpcError>,
    }
    impl<D: DataVisit> Visit for V<'_, D> {
        fn start(&mut self, path: &[Node], attrs: &[(String, String)]) {
            match path {
                [root] => {
                    self.root = Some(root.clone());
                    self.reply.message_id = attrs
                        .iter()
                        .find(|(k, _)| k == "message-id")
                        .map(|(_, v)| v.clone());
                }
                [_, d] if d.name == "data" => self.reply.data = true,
                [_, e] if e.name == "rpc-error" => self.err = Some(RpcError::default()),
                [_, d, rest @ ..] if d.name == "data" => self.data.start(rest),
                _ => {}
            }
        }
        fn leaf(&mut self, path: &[Node], text: &str) {
            match path {
                [_, ok] if ok.name == "ok" => self.reply.ok = true,
                [_, e, leaf] if e.name == "rpc-error" => {
                    if let Some(err) = self.err.as_mut() {
                        let t = text.to_owned();
                        match leaf.name.as_str() {
                            "error-type" => err.error_type = t,
                            "error-tag" => err.tag = t,
                            "error-severity" => err.severity = t,
                            "error-app-tag" => err.app_tag = Some(t),
                            "error-path" => err.path = Some(t),
                            "error-message" => err.message = Some(t),
                            _ => {}
                        }
                    }
                }
                [_, d, rest @ ..] if d.name == "data" && !rest.is_empty() => {
                    self.data.leaf(rest, text)
                }
                _ => {}
            }
        }
        fn end(&mut self, path: &[Node]) {
            if let [_, e] = path
                && e.name == "rpc-error"
                && let Some(err) = self.err.take()
            {
                self.reply.errors.push(err);
            }
        }
    }
    let mut v = V {
        reply: Reply::default(),
        root: None,
        data,
        err: None,
    };
    walk(xml, &mut v)?;
    match v.root {
        Some(r) if r.is(NS_BASE, "rpc-reply") => Ok(v.reply),
        _ => Err(XmlError::Unexpected(format!(
            "expected <rpc-reply> in {NS_BASE}, got {}",
            preview(xml)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// <notification>

/// An RFC 5277 notification: the event element and its leaves, flattened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notification {
    pub event_time: Option<String>,
    pub ns: String,
    pub name: String,
    /// `(path below the event element, text)`, e.g. `("changed-by/username", "admin")`.
    pub leaves: Vec<(String, String)>,
}

impl Notification {
    pub fn leaf(&self, path: &str) -> Option<&str> {
        self.leaves
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    /// All values at `path` (lists repeat).
    #[cfg(any(test, feature = "testing"))]
    pub fn leaves_at<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.leaves
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }
}

/// What arrived on a subscribed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Notification(Notification),
    Reply(Reply),
}

pub fn parse_incoming(xml: &[u8]) -> Result<Incoming, XmlError> {
    struct V {
        n: Notification,
        root: Option<Node>,
        event_seen: bool,
    }
    impl Visit for V {
        fn start(&mut self, path: &[Node], _: &[(String, String)]) {
            match path {
                [root] => self.root = Some(root.clone()),
                [_, ev] if ev.name != "eventTime" && !self.event_seen => {
                    self.event_seen = true;
                    self.n.ns = ev.ns.clone();
                    self.n.name = ev.name.clone();
                }
                _ => {}
            }
        }
        fn leaf(&mut self, path: &[Node], text: &str) {
            match path {
                [_, t] if t.name == "eventTime" => self.n.event_time = Some(text.to_owned()),
                [_, ev, rest @ ..]
                    if ev.name == self.n.name
                        && !rest.is_empty()
                        && self.n.leaves.len() < MAX_NOTIFICATION_LEAVES =>
                {
                    let mut p = String::new();
                    for (i, n) in rest.iter().enumerate() {
                        if i > 0 {
                            p.push('/');
                        }
                        p.push_str(&n.name);
                    }
                    self.n.leaves.push((p, text.to_owned()));
                }
                _ => {}
            }
        }
    }
    let mut v = V {
        n: Notification::default(),
        root: None,
        event_seen: false,
    };
    walk(xml, &mut v)?;
    match v.root {
        Some(r) if r.is(NS_NOTIFICATION, "notification") => {
            if v.n.name.is_empty() {
                return Err(XmlError::Unexpected("notification without an event".into()));
            }
            Ok(Incoming::Notification(v.n))
        }
        Some(r) if r.is(NS_BASE, "rpc-reply") => parse_reply(xml, &mut NoData).map(Incoming::Reply),
        _ => Err(XmlError::Unexpected(format!(
            "expected <notification>, got {}",
            preview(xml)
        ))),
    }
}

/// The start of a message for error texts, printable and short.
pub fn preview(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(&xml[..xml.len().min(120)]);
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    let _ = write!(out, "{}", if xml.len() > 120 { "..." } else { "" });
    format!("{:?}", out.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<hello xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"
  xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <capabilities>
    <capability>urn:ietf:params:netconf:base:1.0</capability>
    <capability>urn:ietf:params:netconf:base:1.1</capability>
    <capability>urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit&amp;also-supported=trim</capability>
    <capability>urn:ietf:params:xml:ns:yang:ietf-system?module=ietf-system&amp;revision=2014-08-06&amp;features=ntp</capability>
  </capabilities>
  <session-id>7</session-id>
</hello>"#;

    #[test]
    fn hello_capabilities_and_session_id() {
        let h = parse_hello(HELLO.as_bytes()).expect("hello");
        assert_eq!(h.session_id, Some(7));
        assert!(h.has(CAP_BASE_11));
        assert!(h.has_module("ietf-system"));
        assert!(!h.has_module("ietf-interfaces"));
        assert_eq!(
            short_capability(&h.capabilities[3]),
            "ietf-system@2014-08-06"
        );
        assert_eq!(short_capability(&h.capabilities[2]), ":with-defaults:1.0");
        assert_eq!(short_capability(&h.capabilities[1]), ":base:1.1");
        assert!(parse_hello(b"<hello/>").is_err(), "namespace is checked");
    }

    #[test]
    fn reply_with_rpc_errors_and_entities() {
        let xml = r#"<rpc-reply message-id="3" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <rpc-error>
    <error-type>protocol</error-type><error-tag>operation-failed</error-tag>
    <error-severity>error</error-severity><error-app-tag>no-access</error-app-tag>
    <error-path>/nc:rpc/nc:edit-config</error-path>
    <error-message xml:lang="en">cannot &amp; will &#x6E;ot &lt;write&gt;</error-message>
    <error-info><bad-value>running</bad-value></error-info>
  </rpc-error>
  <rpc-error><error-type>application</error-type><error-tag>x</error-tag><error-severity>warning</error-severity></rpc-error>
</rpc-reply>"#;
        let r = parse_reply(xml.as_bytes(), &mut NoData).expect("reply");
        assert_eq!(r.message_id.as_deref(), Some("3"));
        assert_eq!(r.errors.len(), 2);
        assert!(r.failed());
        assert_eq!(r.errors[0].tag, "operation-failed");
        assert_eq!(
            r.errors[0].message.as_deref(),
            Some("cannot & will not <write>")
        );
        assert!(r.error_text().contains("error operation-failed (protocol)"));
    }

    #[test]
    fn reply_data_is_streamed_with_relative_paths() {
        struct D(Vec<String>);
        impl DataVisit for D {
            fn leaf(&mut self, path: &[Node], text: &str) {
                let p: Vec<&str> = path.iter().map(|n| n.name.as_str()).collect();
                self.0.push(format!("{}={text}", p.join("/")));
            }
        }
        let xml = r#"<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><nc:data>
<system-state xmlns="urn:ietf:params:xml:ns:yang:ietf-system"><platform><os-name>Linux</os-name></platform>
<clock><boot-datetime><![CDATA[2024-01-01T00:00:00Z]]></boot-datetime></clock></system-state></nc:data></nc:rpc-reply>"#;
        let mut d = D(Vec::new());
        let r = parse_reply(xml.as_bytes(), &mut d).expect("reply");
        assert!(r.data && !r.failed());
        assert_eq!(
            d.0,
            vec![
                "system-state/platform/os-name=Linux",
                "system-state/clock/boot-datetime=2024-01-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn notifications_flatten_leaves() {
        let xml = r#"<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">
  <eventTime>2026-11-27T01:01:07Z</eventTime>
  <netconf-config-change xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications">
    <changed-by><username>emspoolnc</username><session-id>5</session-id></changed-by>
    <edit><target xmlns:sys="urn:ietf:params:xml:ns:yang:ietf-system">/sys:system</target><operation>create</operation></edit>
    <edit><target>/sys:other</target><operation>delete</operation></edit>
  </netconf-config-change>
</notification>"#;
        let Incoming::Notification(n) = parse_incoming(xml.as_bytes()).expect("parse") else {
            panic!("not a notification");
        };
        assert_eq!(n.name, "netconf-config-change");
        assert_eq!(n.ns, NS_NC_NOTIFICATIONS);
        assert_eq!(n.event_time.as_deref(), Some("2026-11-27T01:01:07Z"));
        assert_eq!(n.leaf("changed-by/username"), Some("emspoolnc"));
        assert_eq!(n.leaves_at("edit/operation").count(), 2);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "",
            "   ",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text<a/>",
            "<a>&bogus;</a>",
            "<p:a/>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a><b></a></b>",
            "<a x='1' x='2'/>",
            "<a>&#0;</a>",
            "<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"",
        ] {
            assert!(
                walk(bad.as_bytes(), &mut NoVisit).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(walk(&[0xff, 0xfe, b'<'], &mut NoVisit).is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(walk(deep.as_bytes(), &mut NoVisit).is_err());
        assert!(
            parse_reply(
                b"<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"/>",
                &mut NoData
            )
            .is_err()
        );
    }

    struct NoVisit;
    impl Visit for NoVisit {}
}
