//! The control plane's key material: a CA, the API server's serving certificate for its address
//! (127.0.0.1 unless told otherwise) and the `kubernetes` Service's ClusterIP, and the
//! ServiceAccount token signing key. Made fresh for every control plane, so nothing a test
//! holds is trusted by another one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// Files of a control plane's PKI, written into its directory.
pub struct Pki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// ECDSA P-256, PKCS#8: the API server signs ServiceAccount tokens with it ...
    pub service_account_key: PathBuf,
    /// ... and checks them with its public half.
    pub service_account_pub: PathBuf,
}

impl Pki {
    /// `address`: the API server's own, which its certificate names besides 127.0.0.1.
    pub fn write(dir: &Path, address: IpAddr) -> Result<Pki, Error> {
        let pki = |e: rcgen::Error| Error::Pki(e.to_string());
        let ca_key = KeyPair::generate().map_err(pki)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
        ca_params.distinguished_name = name("rangepool-envtest-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).map_err(pki)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(pki)?;
        let mut names = vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default.svc".to_owned(),
            // The `kubernetes` Service's ClusterIP (the first of --service-cluster-ip-range),
            // which in-cluster clients on real nodes connect to.
            "10.96.0.1".to_owned(),
        ];
        if !address.is_loopback() {
            names.push(address.to_string());
        }
        let mut params = CertificateParams::new(names).map_err(pki)?;
        params.distinguished_name = name("kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving = params.signed_by(&serving_key, &issuer).map_err(pki)?;

        let sa_key = KeyPair::generate().map_err(pki)?;

        let out = Pki {
            ca_pem: ca.pem(),
            ca_file: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
        };
        std::fs::write(&out.ca_file, &out.ca_pem)?;
        std::fs::write(&out.serving_cert, serving.pem())?;
        std::fs::write(&out.serving_key, serving_key.serialize_pem())?;
        std::fs::write(&out.service_account_key, sa_key.serialize_pem())?;
        std::fs::write(&out.service_account_pub, sa_key.public_key_pem())?;
        Ok(out)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}
