//! The MIB modules shipped in mibs/ (issue 19): Net-SNMP's parser loads them, and the name
//! table that names trap OIDs and varbinds (`mibs/names.txt`, `rules::trap`) agrees with them.
//! `packaging` checks the same modules inside the Debian package with
//! [`shipped_mibs_load_and_have_their_licence`].

use crate::common::{self, repo_root};
use std::path::Path;
use std::process::Command;

/// `snmptranslate -On NAME` against the MIB modules in `dir` only.
fn translate(dir: &Path, name: &str) -> Result<String, String> {
    let scratch = std::env::temp_dir().join("emspool-snmptranslate");
    let out = Command::new(common::find_tool("snmptranslate"))
        .arg("-M")
        .arg(dir)
        .args(["-m", "ALL", "-On", name])
        .env_remove("MIBS")
        .env_remove("MIBDIRS")
        .env("SNMPCONFPATH", "/nonexistent")
        .env("SNMP_PERSISTENT_DIR", &scratch)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("snmptranslate: {e} (tests/install-peers.sh installs snmp)"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && text.starts_with('.') {
        Ok(text)
    } else {
        Err(format!(
            "{name}: {}{text}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The MIB modules under /usr/share/emspool/mibs load in Net-SNMP (with their imports:
/// IF-MIB needs SNMPv2-SMI, -TC, -CONF and IANAifType-MIB), and the package's copyright file
/// names the licence of each.
pub(crate) fn shipped_mibs_load_and_have_their_licence(root: &Path) {
    let mibs = root.join("usr/share/emspool/mibs");
    for (name, oid) in [
        ("IF-MIB::ifOperStatus", ".1.3.6.1.2.1.2.2.1.8"),
        ("IF-MIB::linkDown", ".1.3.6.1.6.3.1.1.5.3"),
        ("SNMPv2-MIB::sysName", ".1.3.6.1.2.1.1.5"),
        ("IANAifType-MIB::ianaifType", ".1.3.6.1.2.1.30"),
    ] {
        assert_eq!(
            translate(&mibs, name).unwrap_or_else(|e| panic!("{e}")),
            oid
        );
    }
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/emspool/copyright")).expect("copyright");
    for module in shipped_modules() {
        let path = format!("usr/share/emspool/mibs/{module}.txt");
        assert!(copyright.contains(&path), "copyright does not cover {path}");
    }
}

/// The MIB modules in the repo's mibs/ (every `.txt` but the name table).
fn shipped_modules() -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir(repo_root().join("mibs"))
        .expect("mibs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".txt") && f != "names.txt")
        .map(|f| f.trim_end_matches(".txt").to_owned())
        .collect();
    m.sort();
    m
}

/// Issue 19: the name table that names trap OIDs and varbinds cannot disagree with the MIB
/// modules shipped beside it: every entry from a shipped module resolves, with Net-SNMP's
/// parser, to the entry's own OID.
#[test]
fn names_txt_agrees_with_the_shipped_mib_modules() {
    let dir = repo_root().join("mibs");
    let modules = shipped_modules();
    for m in [
        "SNMPv2-SMI",
        "SNMPv2-TC",
        "SNMPv2-CONF",
        "SNMPv2-MIB",
        "IF-MIB",
        "IANAifType-MIB",
    ] {
        assert!(
            modules.iter().any(|x| x == m),
            "{m} not in mibs/: {modules:?}"
        );
    }
    // Named in names.txt but not shipped (see mibs/README.md); shipping one makes it checked.
    let not_shipped = ["SNMP-COMMUNITY-MIB", "RFC1213-MIB"];
    let table = std::fs::read_to_string(dir.join("names.txt")).expect("names.txt");
    let (mut checked, mut wrong) = (0, Vec::new());
    for line in table.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (oid, name) = line
            .split_once(char::is_whitespace)
            .map(|(o, n)| (o, n.trim()))
            .unwrap_or_else(|| panic!("bad names.txt line {line:?}"));
        let module = name.split("::").next().unwrap_or_default();
        if !modules.iter().any(|m| m == module) {
            assert!(
                not_shipped.contains(&module),
                "{name}: module {module} is neither in mibs/ nor known as not shipped"
            );
            continue;
        }
        match translate(&dir, name) {
            Ok(got) if got == format!(".{oid}") => checked += 1,
            Ok(got) => wrong.push(format!("{name}: names.txt says {oid}, the MIB {got}")),
            Err(e) => wrong.push(e),
        }
    }
    assert!(
        wrong.is_empty(),
        "names.txt disagrees with mibs/:\n{}",
        wrong.join("\n")
    );
    assert!(checked >= 40, "only {checked} entries checked");
    for m in not_shipped {
        assert!(
            !modules.iter().any(|x| x == m),
            "{m} is shipped now: drop it from not_shipped"
        );
    }
}
