//! The aggregator's certificate authority: a self-signed CA (ECDSA P-256)
//! that issues the aggregator's server certificate and the agents'
//! short-lived client certificates.
//!
//! Replicas behind one load balancer share one CA by loading the same PEM
//! pair ([`CertificateAuthority::from_pem`]); agents trust the CA
//! certificate (public, distributed with the agent's configuration).

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};

use crate::error::CaError;
use crate::identity::PeerIdentity;

/// Lifetime of a generated CA certificate.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How far back a client certificate's `notBefore` is set, so that replicas
/// whose clocks lag the issuing replica's by up to this much accept it.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(30);

/// A certificate and its private key, both DER.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate.
    pub cert_der: CertificateDer<'static>,
    /// The PKCS#8 private key.
    pub key_pkcs8_der: Vec<u8>,
}

impl CertifiedKey {
    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_pkcs8_der.clone().into())
    }
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_der_bytes", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// The aggregator's CA.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a new CA with common name `name`, valid for [`CA_LIFETIME`].
    pub fn generate(name: &str) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Canopy");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + CA_LIFETIME).into();
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and PKCS#8 private key, both PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = first_certificate_der(cert_pem)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self {
            cert_der,
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM (what agents trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM (keep secret; share only with replicas).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses)
    /// valid from now for `lifetime`, with a new key.
    pub fn issue_server_certificate(
        &self,
        names: &[String],
        lifetime: Duration,
    ) -> Result<CertifiedKey, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names
                .first()
                .map(String::as_str)
                .unwrap_or("canopy-aggregator"),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = SystemTime::now();
        params.not_before = (now - NOT_BEFORE_BACKDATE).into();
        params.not_after = (now + lifetime).into();
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_der: cert.der().clone(),
            key_pkcs8_der: key.serialize_der(),
        })
    }

    /// Issues a client certificate binding the public key of `csr_der` to
    /// `identity` (agent id, account, role, caller ARN), valid from `now`
    /// (less [`NOT_BEFORE_BACKDATE`]) until `now + lifetime`.
    ///
    /// Only the CSR's public key is used (its signature proves the agent
    /// holds the private key); the names it asks for are ignored.
    pub fn issue_client_certificate(
        &self,
        csr_der: &[u8],
        identity: &PeerIdentity,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<CertificateDer<'static>, CaError> {
        let csr = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(
            csr_der,
        ))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.agent_id.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::URI(identity.account_uri().try_into()?),
            SanType::URI(identity.caller_uri().try_into()?),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = (now - NOT_BEFORE_BACKDATE).into();
        params.not_after = (now + lifetime).into();
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.der().clone())
    }
}

/// A new agent key pair (ECDSA P-256) and a CSR for it naming `agent_id`.
/// Returns the PKCS#8 private key and the CSR, both DER.
pub fn generate_agent_key_and_csr(agent_id: &str) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, agent_id);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_der(), csr.der().to_vec()))
}

/// The first certificate in `pem`, DER.
pub fn first_certificate_der(pem: &str) -> Result<CertificateDer<'static>, CaError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or(CaError::Pem {
            expected: "a certificate",
        })
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CaError::Verifier("secure random source failed".into()))?;
    // Positive, non-zero first byte keeps the DER integer 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Fills `out` with secure random bytes.
pub(crate) fn random_bytes(out: &mut [u8]) {
    // ring's system random source only fails when the OS has none, in which
    // case nothing else in TLS would work either.
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(out);
}
