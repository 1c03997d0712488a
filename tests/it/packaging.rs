//! The Debian package: built with `cargo deb` from the binary this test run built, inspected
//! with dpkg-deb, unpacked into a scratch root with `dpkg -x` (never installed on the system),
//! and its systemd unit, sysusers.d and tmpfiles.d files checked against that root; the
//! debug symbols in their own `emspool-dbgsym` package; the MIB modules it ships, loaded by
//! Net-SNMP and checked against the name table.
//!
//! The binary is the test build's (debug) placed where cargo-deb looks for the release one
//! (`$CARGO_TARGET_DIR/release/emspool` in a temp dir), so the package is what `cargo deb`
//! makes in a release without a second (release) build in CI. Its debug info is first cut to
//! the line tables (`objcopy`), the bulk of what a release build keeps (`debug =
//! "line-tables-only"`): cargo-deb then splits and compresses ~20 MB as in a release (~15 s)
//! rather than the debug build's 250 MB (~45 s).

use crate::common;

use common::{free_port, is_root, peer_tempdir, repo_root, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (tests/install-peers.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The debug sections `objcopy` removes so that what is left is the line tables.
const BEYOND_LINE_TABLES: [&str; 8] = [
    ".debug_info",
    ".debug_abbrev",
    ".debug_str",
    ".debug_loc",
    ".debug_ranges",
    ".debug_aranges",
    ".debug_macro",
    ".debug_pubnames",
];

/// The two packages `cargo deb` makes.
struct Debs {
    main: PathBuf,
    dbgsym: PathBuf,
}

/// Builds the .deb and its -dbgsym .ddeb into `dir/out`, as Cargo.toml configures them.
fn build_deb(dir: &Path) -> Debs {
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    let bin = target.join("release/emspool");
    let mut objcopy = Command::new("objcopy");
    for s in BEYOND_LINE_TABLES {
        objcopy.arg(format!("--remove-section={s}"));
    }
    run(objcopy.arg(common::emspool_bin()).arg(&bin));
    let out_dir = dir.join("out");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["deb", "--no-build", "--fast", "--output"])
        .arg(&out_dir)
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", &target)
        .stdin(std::process::Stdio::null());
    // Bounded: cargo-deb only splits, compresses and archives here.
    let mut child = common::spawn("cargo-deb", cmd, dir);
    let st = child
        .wait_timeout(Duration::from_secs(300))
        .unwrap_or_else(|| panic!("cargo deb took over 300 s\n{}", child.log_tail()));
    assert!(
        st.success(),
        "cargo deb failed ({st}); is cargo-deb installed (tests/install-peers.sh)?\n{}",
        child.log_tail()
    );
    let mut made: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("output dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    made.sort();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        made.len() == 2
            && made[0].starts_with(&format!("emspool-dbgsym_{version}-"))
            && made[0].ends_with(".ddeb")
            && made[1].starts_with(&format!("emspool_{version}-"))
            && made[1].ends_with(".deb"),
        "want emspool_*.deb and emspool-dbgsym_*.ddeb, got {made:?}"
    );
    Debs {
        dbgsym: out_dir.join(&made[0]),
        main: out_dir.join(&made[1]),
    }
}

/// (name, size, flags) of each section of an ELF file (`readelf -S -W`).
fn sections(elf: &Path) -> Vec<(String, u64, String)> {
    let out = stdout(&run(Command::new("readelf").args(["-S", "-W"]).arg(elf)));
    out.lines()
        .filter_map(|l| {
            // "  [Nr] Name Type Address Off Size ES Flg Lk Inf Al"; Flg is empty for some.
            let rest = l.trim_start().strip_prefix('[')?.split_once(']')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let size = u64::from_str_radix(f.get(4)?, 16).ok()?;
            let flags = if f.len() >= 10 { f[6] } else { "" };
            Some((f[0].to_owned(), size, flags.to_owned()))
        })
        .collect()
}

/// The GNU build id of an ELF file, as hex.
fn build_id(elf: &Path) -> String {
    let out = stdout(&run(Command::new("readelf").arg("-n").arg(elf)));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build id in {}:\n{out}", elf.display()))
        .trim()
        .to_owned()
}

/// (mode string, owner, path) of each entry of `dpkg-deb -c`.
fn contents(deb: &Path) -> Vec<(String, String, String)> {
    stdout(&run(Command::new("dpkg-deb").arg("-c").arg(deb)))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[5].trim_start_matches('.')
                    .trim_end_matches('/')
                    .to_owned(),
            )
        })
        .collect()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn owner_of(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// uid and gid of `name` in `root/etc/passwd`.
fn user_in(root: &Path, name: &str) -> (u32, u32, String) {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd in root");
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {passwd}"));
    let f: Vec<&str> = line.split(':').collect();
    (
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        line.to_owned(),
    )
}

#[test]
fn deb_package_builds_unpacks_and_its_unit_verifies() {
    let dir = peer_tempdir("deb");
    let debs = build_deb(dir.path());
    let deb = &debs.main;

    // Control data.
    let field = |name: &str| {
        stdout(&run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name)))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), "emspool");
    assert!(field("Version").starts_with(env!("CARGO_PKG_VERSION")));
    let depends = field("Depends");
    assert!(
        depends.contains("adduser") && depends.contains("libc6"),
        "{depends}"
    );
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/emspool/emspool.toml");
    for script in ["postinst", "prerm", "postrm"] {
        let p = control.join(script);
        let text = std::fs::read_to_string(&p).expect("maintainer script");
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        assert!(text.contains("\nset -e\n"), "{script}");
        assert_eq!(mode_of(&p) & 0o111, 0o111, "{script} not executable");
        run(Command::new("sh").arg("-n").arg(&p));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers emspool.conf"),
        "{postinst}"
    );
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("systemd-tmpfiles --create emspool.conf"),
        "{postinst}"
    );

    // Files, modes, owners.
    let entries = contents(deb);
    let expect = [
        ("/usr/bin/emspool", "-rwxr-xr-x"),
        ("/lib/systemd/system/emspool.service", "-rw-r--r--"),
        ("/etc/emspool/emspool.toml", "-rw-r-----"),
        ("/usr/lib/sysusers.d/emspool.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/emspool.conf", "-rw-r--r--"),
        ("/usr/share/emspool/mibs/README.md", "-rw-r--r--"),
        ("/usr/share/emspool/mibs/IF-MIB.txt", "-rw-r--r--"),
        ("/usr/share/emspool/yang/README.md", "-rw-r--r--"),
        (
            "/usr/share/emspool/prometheus/emspool-rules.yml",
            "-rw-r--r--",
        ),
        ("/usr/share/emspool/grafana/emspool.json", "-rw-r--r--"),
        ("/usr/share/doc/emspool/README.md", "-rw-r--r--"),
        ("/usr/share/doc/emspool/copyright", "-rw-r--r--"),
    ];
    for (path, mode) in expect {
        let e = entries
            .iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("{path} missing from the package: {entries:?}"));
        assert_eq!(e.0, mode, "{path}");
    }
    for (_, owner, path) in &entries {
        assert!(owner == "0/0" || owner == "root/root", "{path}: {owner}");
    }
    // Everything the repo has in mibs/ and yang/ is shipped.
    for d in ["mibs", "yang"] {
        for f in std::fs::read_dir(repo_root().join(d)).expect(d) {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            let want = format!("/usr/share/emspool/{d}/{f}");
            assert!(
                entries.iter().any(|(_, _, p)| *p == want),
                "{want} not shipped"
            );
        }
    }

    // Unpack into a scratch root: the shipped files are the repo's.
    let root = dir.path().join("root");
    run(Command::new("dpkg").arg("-x").arg(deb).arg(&root));
    for (installed, source) in [
        (
            "lib/systemd/system/emspool.service",
            "packaging/emspool.service",
        ),
        ("etc/emspool/emspool.toml", "packaging/emspool.toml"),
        (
            "usr/lib/sysusers.d/emspool.conf",
            "packaging/emspool.sysusers",
        ),
        (
            "usr/lib/tmpfiles.d/emspool.conf",
            "packaging/emspool.tmpfiles",
        ),
        (
            "usr/share/emspool/prometheus/emspool-rules.yml",
            "packaging/prometheus/emspool-rules.yml",
        ),
        (
            "usr/share/emspool/grafana/emspool.json",
            "packaging/grafana/emspool.json",
        ),
        ("usr/share/doc/emspool/copyright", "packaging/copyright"),
        ("usr/share/emspool/mibs/IF-MIB.txt", "mibs/IF-MIB.txt"),
    ] {
        assert_eq!(
            std::fs::read(root.join(installed)).expect(installed),
            std::fs::read(repo_root().join(source)).expect(source),
            "{installed} differs from {source}"
        );
    }

    debug_symbols_are_in_the_dbgsym_package_only(&debs, &entries, dir.path(), &root);
    crate::mibs::shipped_mibs_load_and_have_their_licence(&root);

    // The packaged binary accepts the packaged default config.
    let bin = root.join("usr/bin/emspool");
    let conf = root.join("etc/emspool/emspool.toml");
    let out = stdout(&run(Command::new(&bin).arg("check-config").arg(&conf)));
    assert!(
        out.contains("ok (server 1, 0 element(s), 0 credential profile(s))"),
        "{out}"
    );
    // And serves with it (listen and data_dir moved into the scratch dir).
    let port = free_port();
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("127.0.0.1:8780", &format!("127.0.0.1:{port}"))
        .replace(
            "/var/lib/emspool",
            &root.join("var/lib/emspool").display().to_string(),
        );
    let local = dir.path().join("local.toml");
    std::fs::write(&local, text).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("serve").arg("--config").arg(&local);
    let mut server = common::spawn("packaged-emspool", cmd, dir.path());
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ureq::get(&url).call().ok().map(|_| ())
    })
    .unwrap_or_else(|e| panic!("packaged binary not ready: {e}\n{}", server.log_tail()));
    let st = server.terminate();
    assert!(st.success(), "{st}\n{}", server.log_tail());

    // systemd-analyze verify against the scratch root, which gets the host's units (targets
    // the unit refers to) next to the package's: ExecStart= resolves to the packaged binary.
    let units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("multi-user.target").exists())
        .expect("the host's systemd units (tests/install-peers.sh installs systemd)");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(&units)
        .arg(root.join("usr/lib/systemd/")));
    let unit = root.join("lib/systemd/system/emspool.service");
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(&unit));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("emspool"),
        "systemd-analyze verify complains about the unit:\n{said}"
    );
    // The hardening holds: systemd's own exposure score ("OK" is below 4; we are near 1.6).
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--no-pager", "--offline=yes"])
        .arg(format!("--root={}", root.display()))
        .arg(&unit));
    let report = stdout(&out);
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("emspool.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(score <= 2.5, "exposure {score}:\n{report}");

    // sysusers.d and tmpfiles.d applied to the scratch root: the user, then the directories.
    assert!(
        is_root(),
        "the tmpfiles.d check sets owners: run the tests as root (CI does)"
    );
    std::fs::create_dir_all(root.join("etc")).unwrap();
    run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(root.join("usr/lib/sysusers.d/emspool.conf")));
    let (uid, gid, line) = user_in(&root, "emspool");
    assert!(uid > 0 && uid < 1000, "not a system user: {line}");
    assert!(
        line.ends_with(":/var/lib/emspool:/usr/sbin/nologin"),
        "{line}"
    );
    run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.display()))
        .arg("--create")
        .arg(root.join("usr/lib/tmpfiles.d/emspool.conf")));
    assert_eq!(mode_of(&root.join("etc/emspool")), 0o750);
    assert_eq!(owner_of(&root.join("etc/emspool")), (0, gid));
    assert_eq!(mode_of(&conf), 0o640);
    assert_eq!(owner_of(&conf), (0, gid));
    assert_eq!(mode_of(&root.join("var/lib/emspool")), 0o750);
    assert_eq!(owner_of(&root.join("var/lib/emspool")), (uid, gid));
}

/// Issue 19: the main package's binary has no debug sections (16 MB of a release's package
/// were its line tables); they are in emspool-dbgsym, under /usr/lib/debug/.build-id/, named
/// by the build id of the binary they belong to.
fn debug_symbols_are_in_the_dbgsym_package_only(
    debs: &Debs,
    entries: &[(String, String, String)],
    dir: &Path,
    root: &Path,
) {
    assert!(
        !entries
            .iter()
            .any(|(_, _, p)| p.starts_with("/usr/lib/debug")),
        "debug files in the main package: {entries:?}"
    );
    let bin = root.join("usr/bin/emspool");
    let secs = sections(&bin);
    assert!(secs.iter().any(|s| s.0 == ".text"), "{secs:?}");
    // .debug_gdb_scripts is loaded (flag A): gdb's pretty-printer hook, not debug info.
    let debug: Vec<_> = secs
        .iter()
        .filter(|s| (s.0.starts_with(".debug_") && !s.2.contains('A')) || s.0 == ".symtab")
        .collect();
    assert!(
        debug.is_empty(),
        "debug sections left in /usr/bin/emspool: {debug:?}"
    );
    let unloaded: u64 = secs
        .iter()
        .filter(|s| !s.2.contains('A'))
        .map(|s| s.1)
        .sum();
    assert!(
        unloaded < 64 * 1024,
        "{unloaded} bytes of /usr/bin/emspool are not loaded at run time: {secs:?}"
    );

    let field = |name: &str| {
        let out = run(Command::new("dpkg-deb")
            .arg("-f")
            .arg(&debs.dbgsym)
            .arg(name));
        stdout(&out).trim().to_owned()
    };
    assert_eq!(field("Package"), "emspool-dbgsym");
    let version = field("Version");
    let main_version = stdout(&run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(&debs.main)
        .arg("Version")));
    assert_eq!(version, main_version.trim());
    let needs = format!("{} {}", field("Depends"), field("Recommends"));
    assert!(needs.contains(&format!("emspool (= {version})")), "{needs}");

    let id = build_id(&bin);
    let want = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    let files: Vec<String> = contents(&debs.dbgsym)
        .into_iter()
        .filter(|(mode, _, _)| mode.starts_with('-'))
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(
        files,
        std::slice::from_ref(&want),
        "dbgsym package contents"
    );
    let dbg_root = dir.join("dbgsym-root");
    run(Command::new("dpkg")
        .arg("-x")
        .arg(&debs.dbgsym)
        .arg(&dbg_root));
    let debug_file = dbg_root.join(want.trim_start_matches('/'));
    let dsecs = sections(&debug_file);
    let line = dsecs
        .iter()
        .find(|s| s.0 == ".debug_line")
        .unwrap_or_else(|| panic!("no line tables in the dbgsym file: {dsecs:?}"));
    // Compressed (flag C), as `compress-debug-symbols` asks; still megabytes of line tables.
    assert!(line.2.contains('C') && line.1 > 1 << 20, "{line:?}");
    assert!(dsecs.iter().any(|s| s.0 == ".symtab"), "{dsecs:?}");
    assert_eq!(
        build_id(&debug_file),
        id,
        "the debug file is another build's"
    );
}

#[test]
fn unit_file_has_the_required_settings() {
    let unit = std::fs::read_to_string(repo_root().join("packaging/emspool.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/emspool serve --config /etc/emspool/emspool.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=emspool",
        "Group=emspool",
        "StateDirectory=emspool",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "UMask=0027",
        "Restart=on-failure",
    ] {
        assert!(has(line), "missing `{line}`");
    }
}
