//! Human tables for the CLI's answers.

use crate::model::{Alarm, ElementView, Event, ServerId, format_millis};
use std::fmt::Write;

/// A cell as a terminal may show it: control characters (a device's ESC or BEL in its
/// sysName, say) escaped as `\u{1b}`, everything else as it is. JSON answers stay faithful.
pub(crate) fn cell(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Left-aligned columns sized to their widest cell; control characters escaped.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub(crate) fn partial_note(partial: bool, missing: &[ServerId]) -> String {
    if !partial {
        return String::new();
    }
    let ids: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
    format!(
        "(partial answer: server(s) {} did not answer)\n",
        ids.join(", ")
    )
}

pub(crate) fn elements(v: &[ElementView]) -> String {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|e| {
            vec![
                e.element.name.to_string(),
                e.element.address.to_string(),
                super::detail::protocol(e.element.protocol).to_owned(),
                e.owner.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
                e.status.state.to_string(),
                e.status.sys_name.clone().unwrap_or_default(),
                e.status.interfaces.len().to_string(),
                e.active_alarms.to_string(),
                e.status.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "ADDRESS", "PROTOCOL", "OWNER", "STATE", "SYSNAME", "IFS", "ALARMS", "REASON",
        ],
        &rows,
    )
}

pub(crate) fn alarms(v: &[Alarm]) -> String {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.severity.to_string(),
                a.element.clone(),
                a.kind.clone(),
                a.instance.clone().unwrap_or_default(),
                a.count.to_string(),
                format_millis(a.last_seen),
                a.acked_by.clone().unwrap_or_default(),
                a.text.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "SEVERITY",
            "ELEMENT",
            "KIND",
            "INSTANCE",
            "COUNT",
            "LAST SEEN",
            "ACKED BY",
            "TEXT",
        ],
        &rows,
    )
}

pub(crate) fn events(v: &[Event]) -> String {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|e| {
            vec![
                format_millis(e.ts),
                e.server.to_string(),
                e.element.clone().unwrap_or_default(),
                e.kind.clone(),
                e.severity.to_string(),
                e.text.clone(),
            ]
        })
        .collect();
    table(
        &["TIME", "SERVER", "ELEMENT", "KIND", "SEVERITY", "TEXT"],
        &rows,
    )
}

/// servers -> elements as a tree, with state and alarm counts.
pub(crate) fn view(v: &crate::api::view::ViewAnswer) -> String {
    let mut out = format!(
        "pool ({}): master {}, term {}\n",
        v.source,
        v.master.map_or("none".to_owned(), |m| m.to_string()),
        crate::cluster::election::term_text(v.term),
    );
    let node = |e: &crate::api::view::ElementNode| {
        let alarms = if e.alarms > 0 {
            format!(", {} alarm(s)", e.alarms)
        } else {
            String::new()
        };
        format!("{} ({}{alarms})", e.name, e.state)
    };
    for (i, s) in v.servers.iter().enumerate() {
        let last_server = i + 1 == v.servers.len() && v.unassigned.is_empty();
        let _ = writeln!(
            out,
            "{} server {}{}{} — {} element(s)",
            if last_server { "└─" } else { "├─" },
            s.id,
            if s.master { " [master]" } else { "" },
            if s.alive { "" } else { " [dead]" },
            s.elements.len()
        );
        let bar = if last_server { "   " } else { "│  " };
        for (j, e) in s.elements.iter().enumerate() {
            let twig = if j + 1 == s.elements.len() {
                "└─"
            } else {
                "├─"
            };
            let _ = writeln!(out, "{bar}{twig} {}", node(e));
        }
    }
    if !v.unassigned.is_empty() {
        let _ = writeln!(out, "└─ unassigned — {} element(s)", v.unassigned.len());
        for e in &v.unassigned {
            let _ = writeln!(out, "   └─ {}", node(e));
        }
    }
    out.push_str(&partial_note(v.partial, &v.missing));
    out
}

pub(crate) fn pool(v: &crate::cluster::PoolView) -> String {
    let master = v.master.map_or("none".to_owned(), |m| m.to_string());
    let mut out = format!(
        "answered by server {}: master {master}, term {}, assignment {}/{}{}{}\n",
        v.server,
        crate::cluster::election::term_text(v.term),
        crate::cluster::election::term_text(v.assignment.term),
        v.assignment.version,
        if v.quorum { "" } else { ", NO QUORUM" },
        if v.fenced { ", FENCED" } else { "" },
    );
    let rows: Vec<Vec<String>> = v
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                if m.alive { "alive" } else { "dead" }.to_owned(),
                if m.master { "master" } else { "" }.to_owned(),
                m.elements.to_string(),
                m.url.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["ID", "STATE", "ROLE", "ELEMENTS", "URL"], &rows));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_to_widest_cell() {
        let t = super::table(&["A", "B"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     B\nlong  x\n");
    }

    #[test]
    fn a_devices_control_bytes_are_escaped_in_tables() {
        // A sysName that would clear the screen and ring the bell on a terminal.
        let evil = "r1\u{1b}[2J\u{7}\u{9b}";
        let t = super::table(&["NAME", "SYSNAME"], &[vec!["r1".into(), evil.into()]]);
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(t.contains("r1\\u{1b}[2J\\u{7}\\u{9b}"), "{t}");
        assert_eq!(super::cell("plain name"), "plain name");
    }
}
