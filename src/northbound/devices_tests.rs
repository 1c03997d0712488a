use super::*;
use crate::model::Interface;
use axum::http::HeaderValue;

fn status(state: ElementState, ifs: Vec<Interface>) -> ElementStatus {
    ElementStatus {
        state,
        last_poll: Some(1_700_000_000_123),
        last_duration_ms: Some(4),
        sys_uptime: Some(123_456),
        interfaces: ifs,
        ..ElementStatus::default()
    }
}

fn full_counters() -> Counters {
    Counters {
        in_octets: 10_000_000_001,
        out_octets: 2,
        in_ucast: 3,
        out_ucast: 4,
        speed_bps: 1_000_000_000,
        in_errors: 5,
        out_errors: 6,
        in_discards: 7,
        out_discards: 8,
        present: 0x1ff,
    }
}

fn text(snap: &Snapshot) -> (String, RenderStats) {
    let mut out = Vec::new();
    let st = render(snap, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), st)
}

#[test]
fn renders_every_family_grouped_with_poll_timestamps() {
    let mut snap = Snapshot {
        server: ServerId(2),
        arena: String::new(),
        elements: Vec::new(),
        ifs: Vec::new(),
    };
    let ifs = vec![
        Interface::with_labels(1, "Gi0/1 \"uplink\"", Some("Gi0/1"), Some("to core\\1"))
            .with_status(1, 1)
            .with_counters(full_counters()),
        Interface::new(2, "eth\n2", None).with_status(2, 2),
    ];
    snap.add("r1", &status(ElementState::Up, ifs.clone()));
    snap.add("r2", &status(ElementState::Down, ifs));
    let (t, st) = text(&snap);
    assert_eq!(st.elements, 2);
    assert_eq!(st.bytes, t.len());
    assert_eq!(st.series, t.lines().filter(|l| !l.starts_with('#')).count());
    assert!(t.contains(
        "emspool_device_if_in_octets_total{element=\"r1\",ifindex=\"1\",ifname=\"Gi0/1\",ifdescr=\"Gi0/1 \\\"uplink\\\"\"} 10000000001 1700000000123\n"
    ), "{t}");
    assert!(t.contains("emspool_device_if_speed_bytes_per_second{element=\"r1\",ifindex=\"1\",ifname=\"Gi0/1\",ifdescr=\"Gi0/1 \\\"uplink\\\"\"} 125000000 1700000000123\n"));
    assert!(t.contains("ifalias=\"to core\\\\1\"} 1 1700000000123\n"));
    assert!(t.contains("emspool_device_if_oper_status{element=\"r1\",ifindex=\"2\",ifname=\"\",ifdescr=\"eth\\n2\"} 2 1700000000123\n"));
    assert!(t.contains("emspool_device_owner{element=\"r1\",server=\"2\"} 1\n"));
    assert!(t.contains("emspool_device_up{element=\"r2\"} 0 1700000000123\n"));
    assert!(
        t.contains("emspool_device_poll_duration_seconds{element=\"r1\"} 0.004 1700000000123\n")
    );
    assert!(t.contains("emspool_device_uptime_seconds{element=\"r1\"} 1234.56 1700000000123\n"));
    // A down element exports its state, never stale counters.
    assert!(!t.contains("emspool_device_if_in_octets_total{element=\"r2\""));
    assert!(!t.contains("emspool_device_uptime_seconds{element=\"r2\""));
    // Interface 2 has no counters: only its statuses and info.
    assert!(!t.contains("in_octets_total{element=\"r1\",ifindex=\"2\""));
    // Each metric's lines are one group: a name never comes back after another started.
    let mut seen = Vec::<String>::new();
    for l in t.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split('{').next().unwrap().to_owned();
        if seen.last() != Some(&name) {
            assert!(!seen.contains(&name), "{name} is not one group");
            seen.push(name);
        }
    }
}

#[test]
fn label_values_are_cut_and_escaped() {
    let mut s = String::new();
    push_label_value(&mut s, &"é".repeat(100));
    assert!(s.len() <= MAX_LABEL_BYTES && s.len() == 128 && s.chars().all(|c| c == 'é'));
    let mut s = String::new();
    push_label_value(&mut s, "a\\b\"c\nd\re\u{7f}");
    assert_eq!(s, "a\\\\b\\\"c\\nd e ");
}

#[test]
fn shards_split_the_elements_stably() {
    assert!(Shard::parse(None, None).unwrap() == Shard::ALL);
    assert!(Shard::parse(Some(3), Some(3)).is_err());
    assert!(Shard::parse(Some(0), None).is_err());
    assert!(Shard::parse(Some(0), Some(0)).is_err());
    assert!(Shard::parse(Some(0), Some(MAX_SHARDS + 1)).is_err());
    // FNV-1a 64 test vector: the hash must not change between releases or servers.
    assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    let names: Vec<String> = (0..1000).map(|i| format!("ne{i:04}")).collect();
    let mut counts = [0usize; 4];
    for n in &names {
        let owners: Vec<u32> = (0..4)
            .filter(|&i| Shard { index: i, count: 4 }.contains(n))
            .collect();
        assert_eq!(owners.len(), 1, "{n} in exactly one shard");
        counts[owners[0] as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
}

#[test]
fn gzip_only_when_accepted() {
    let h = |v: &str| {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        m
    };
    assert!(accepts_gzip(&h("gzip")));
    assert!(accepts_gzip(&h("deflate, GZIP;q=0.5")));
    assert!(accepts_gzip(&h("*")));
    assert!(!accepts_gzip(&h("gzip;q=0")));
    assert!(!accepts_gzip(&h("identity")));
    assert!(!accepts_gzip(&HeaderMap::new()));
}
