use super::certs::{Leaf, Pem, new_ca, new_leaf};
use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;

fn der(p: &Pem) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(p.cert.as_bytes()).expect("PEM")
}

#[test]
fn member_certificates_name_their_id_clients_none() {
    let ca = new_ca("test pool CA").unwrap();
    let hosts = ["127.0.0.1".to_string(), "node3.example".to_string()];
    let m = new_leaf(
        &ca,
        Leaf::Member {
            id: 3,
            hosts: &hosts,
        },
    )
    .unwrap();
    assert_eq!(member_id(&der(&m)), Some(ServerId(3)));
    let c = new_leaf(&ca, Leaf::Client { name: "operator" }).unwrap();
    assert_eq!(member_id(&der(&c)), None);
    assert_eq!(member_id(&der(&ca)), None);
    assert_eq!(member_id(&CertificateDer::from(vec![1u8, 2, 3])), None);
    assert!(
        new_leaf(
            &ca,
            Leaf::Member {
                id: 0,
                hosts: &hosts
            }
        )
        .is_err()
    );
    assert!(
        new_leaf(
            &ca,
            Leaf::Client {
                name: "emspool-member-2"
            }
        )
        .is_err()
    );
}

/// A member certificate verifies against its CA for both uses, and not against another CA.
#[test]
fn member_certificates_chain_to_their_ca_only() {
    init();
    let ca = new_ca("pool A").unwrap();
    let other = new_ca("pool B").unwrap();
    let hosts = ["127.0.0.1".to_string()];
    let m = new_leaf(
        &ca,
        Leaf::Member {
            id: 1,
            hosts: &hosts,
        },
    )
    .unwrap();
    let roots = |p: &Pem| {
        let mut r = RootCertStore::empty();
        r.add(der(p)).unwrap();
        Arc::new(r)
    };
    let now = rustls_pki_types::UnixTime::now();
    let client_ok = WebPkiClientVerifier::builder_with_provider(roots(&ca), provider())
        .build()
        .unwrap();
    assert!(client_ok.verify_client_cert(&der(&m), &[], now).is_ok());
    let client_other = WebPkiClientVerifier::builder_with_provider(roots(&other), provider())
        .build()
        .unwrap();
    assert!(client_other.verify_client_cert(&der(&m), &[], now).is_err());
    let server =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&ca), provider())
            .build()
            .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    assert!(
        server
            .verify_server_cert(&der(&m), &[], &name, &[], now)
            .is_ok()
    );
}
