//! The service provider protocol, on samael 0.0.22 + xmlsec (Debian's
//! libxmlsec1 1.2.37) for everything that is XML Signature:
//!
//! - every signature in a message is verified by xmlsec against the node's
//!   signing certificates from its metadata, with an algorithm allow-list
//!   (ecdsa-sha256, rsa-sha256; sha256 digests), and the document is reduced to
//!   what those signatures cover (`ReduceMode::ValidateAndMarkNoAncestors`):
//!   only signed elements are ever read (XML Signature Wrapping);
//! - our own messages are signed by xmlsec (`ArtifactResolve`) or, for the
//!   HTTP-Redirect `AuthnRequest`, by OpenSSL over the query string as the
//!   binding prescribes.
//!
//! What samael leaves to us, done here: metadata and `AuthnRequest` from our
//! own templates (eIDAS extensions), the artifact back channel, decryption of
//! `EncryptedAssertion` ([`super::xmlenc`]: ECDH-ES or RSA-OAEP, AES-GCM, after
//! the enclosing signature verified), and the semantic checks of every response
//! (issuer, destination, audience required, bearer recipient, times with a
//! small skew, `InResponseTo` required: no IdP-initiated logins). samael's own
//! `parse_xml_response` is not used: it silently accepts an unsigned response
//! when the metadata has no signing certificate, treats the audience as
//! optional and decrypts with rsa-1_5 and CBC.
//!
//! libxml2 and xmlsec run under one process-wide lock: their global state is
//! not documented as thread-safe for this use, and a node login costs a few
//! milliseconds of it.

use super::xmlenc;
use super::{Refusal, Verified};
use crate::config::Settings;
use crate::file_watch::FileWatch;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use libxml::parser::Parser;
use libxml::tree::{Document, Node};
use libxml::xpath::Context;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
};
use samael::metadata::EntityDescriptor;
use samael::schema::{Assertion, Response};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

static XML_LOCK: Mutex<()> = Mutex::new(());

fn xml_lock() -> std::sync::MutexGuard<'static, ()> {
    XML_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const BINDING_ARTIFACT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact";
const BINDING_SOAP: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

const ALLOWED: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::RsaSha256,
];

/// How old an `IssueInstant` may be (plus the skew): a response is consumed
/// within seconds of being issued.
const MAX_MESSAGE_AGE: i64 = 300;

/// The configured service provider and what it knows of the node.
pub struct ServiceProvider {
    entity_id: String,
    acs_url: String,
    /// The node's metadata now; replaced when its file changes.
    node: RwLock<Arc<NodeMetadata>>,
    watch: Mutex<FileWatch>,
    sign_key: PKey<Private>,
    sign_key_pkcs8: Vec<u8>,
    enc_key: Option<PKey<Private>>,
    min_loa: String,
    skew: ChronoDuration,
    metadata_xml: String,
    http: BackChannel,
    artifact_timeout: std::time::Duration,
}

/// What the node's metadata says. A message is checked against one
/// snapshot from start to end.
struct NodeMetadata {
    entity_id: String,
    sso_redirect_url: String,
    /// `ArtifactResolutionService` (SOAP) endpoints by index.
    ars: Vec<(usize, String)>,
    certs: Vec<CertificateDer>,
}

/// How often at most the node's metadata file is looked at for a change.
const METADATA_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

type BackChannel = hyper_util::client::legacy::Client<
    hyper_tls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// The most a SOAP answer may weigh.
const MAX_SOAP: usize = 512 * 1024;

/// An `AuthnRequest` ready to be sent.
pub struct OutgoingRequest {
    pub id: String,
    pub relay_state: String,
    /// The node's SSO URL with the signed query.
    pub redirect_url: String,
}

fn pem_cert(path: &std::path::Path, what: &str) -> Result<X509, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    X509::from_pem(&pem)
        .map_err(|e| format!("{what} {}: not a PEM certificate: {e}", path.display()))
}

fn cert_b64(cert: &X509) -> Result<String, String> {
    Ok(STANDARD.encode(cert.to_der().map_err(|e| e.to_string())?))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn random_id() -> String {
    let mut b = [0u8; 20];
    openssl::rand::rand_bytes(&mut b).expect("OpenSSL RNG");
    // An NCName: must not start with a digit.
    format!("_{}", hex::encode(b))
}

fn now_instant() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn sig_alg(key: &PKey<Private>) -> Result<&'static str, String> {
    match key.id() {
        Id::EC => Ok("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
        Id::RSA => Ok("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
        _ => Err("secrets.saml_sp_key: an EC P-256 or RSA key is required".into()),
    }
}

impl ServiceProvider {
    /// Reads the node's metadata and our keys; refuses anything that would
    /// make verification weaker than it reads (no signing certificate, no SSO
    /// endpoint, a key that does not match its certificate).
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        let n = &s.national_node;
        let md_path = n
            .idp_metadata_file
            .as_ref()
            .ok_or("national_node.idp_metadata_file is required")?;
        let node = read_node_metadata(md_path)?;

        let key_pem = s
            .secrets
            .saml_sp_key
            .as_ref()
            .ok_or("secrets.saml_sp_key is required")?;
        let sign_key = PKey::private_key_from_pem(key_pem.expose_secret().as_bytes())
            .map_err(|_| "secrets.saml_sp_key: not a PEM private key".to_string())?;
        sig_alg(&sign_key)?;
        let cert_path = n
            .sp_certificate_file
            .as_ref()
            .ok_or("national_node.sp_certificate_file is required")?;
        let sign_cert = pem_cert(cert_path, "national_node.sp_certificate_file")?;
        let matches = |cert: &X509, key: &PKey<Private>| {
            cert.public_key().map(|p| p.public_eq(key)).unwrap_or(false)
        };
        if !matches(&sign_cert, &sign_key) {
            return Err(
                "national_node.sp_certificate_file does not match secrets.saml_sp_key".into(),
            );
        }
        let sign_key_pkcs8 = sign_key
            .private_key_to_pkcs8()
            .map_err(|e| format!("secrets.saml_sp_key: {e}"))?;

        let (enc_key, enc_cert) = match (
            &n.sp_encryption_certificate_file,
            &s.secrets.saml_sp_encryption_key,
        ) {
            (Some(path), Some(pem)) => {
                let key =
                    PKey::private_key_from_pem(pem.expose_secret().as_bytes()).map_err(|_| {
                        "secrets.saml_sp_encryption_key: not a PEM private key".to_string()
                    })?;
                match key.id() {
                    Id::RSA => {}
                    // login.gov.pl's profile: ECDH-ES on a NIST curve.
                    Id::EC if ["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"]
                        .iter()
                        .any(|oid| xmlenc::curve_matches(&key, &format!("urn:oid:{oid}"))) => {}
                    _ => return Err("secrets.saml_sp_encryption_key: an EC key on P-256, P-384 or P-521 (ECDH-ES, login.gov.pl's profile) or an RSA key (RSA-OAEP) is needed (see docs/national-node.md)".into()),
                }
                let cert = pem_cert(path, "national_node.sp_encryption_certificate_file")?;
                if !matches(&cert, &key) {
                    return Err("national_node.sp_encryption_certificate_file does not match secrets.saml_sp_encryption_key".into());
                }
                (Some(key), Some(cert))
            }
            _ => (None, None),
        };

        let origin = s.server.public_origin.trim_end_matches('/');
        let acs_url = format!("{origin}/saml/acs");
        let entity_id = n.sp_entity_id(&s.server);
        let metadata_xml = metadata(&entity_id, &acs_url, &sign_cert, enc_cert.as_ref())?;
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(back_channel_tls(s)?);
        Ok(Self {
            entity_id,
            acs_url,
            node: RwLock::new(Arc::new(node)),
            watch: Mutex::new(FileWatch::new(md_path, METADATA_CHECK_EVERY)),
            sign_key,
            sign_key_pkcs8,
            enc_key,
            min_loa: n.min_loa.clone(),
            skew: ChronoDuration::from_std(n.clock_skew).unwrap_or(ChronoDuration::seconds(60)),
            metadata_xml,
            http,
            artifact_timeout: n.artifact_timeout,
        })
    }

    pub fn metadata(&self) -> &str {
        &self.metadata_xml
    }

    /// The node's metadata now. At most every [`METADATA_CHECK_EVERY`] one
    /// caller looks at the file; a changed file is read again and replaces
    /// it (the node rotates its signing keys without our restart). A file
    /// that no longer reads as valid metadata keeps the last good one, with
    /// an error logged at every check until it is fixed: those certificates
    /// were trusted, and a broken file must not end every node login.
    /// Never call it holding [`xml_lock`] (reading takes it).
    fn node(&self) -> Arc<NodeMetadata> {
        // try_lock: while one caller reads the file, the others go on with
        // the metadata they have.
        if let Ok(mut w) = self.watch.try_lock()
            && let Some(change) = w.changed()
        {
            match read_node_metadata(w.path()) {
                Ok(md) => {
                    tracing::info!(
                        event = "saml_metadata_reloaded",
                        signing_certificates = md.certs.len(),
                        "login.gov.pl metadata changed and was reloaded"
                    );
                    *self.node.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(md);
                    w.accept(change);
                }
                Err(error) => tracing::error!(
                    event = "saml_metadata_invalid",
                    %error,
                    "login.gov.pl metadata changed but is not valid: the previous metadata stays in use"
                ),
            }
        }
        self.node.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A signed HTTP-Redirect `AuthnRequest` asking for the eIDAS natural
    /// person's attributes at `national_node.min_loa` or above.
    pub fn authn_request(&self) -> Result<OutgoingRequest, String> {
        let node = self.node();
        let id = random_id();
        let xml = format!(
            r#"<saml2p:AuthnRequest xmlns:saml2p="{NS_SAMLP}" xmlns:saml2="{NS_SAML}" xmlns:eidas="http://eidas.europa.eu/saml-extensions" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{BINDING_ARTIFACT}" ForceAuthn="true" IsPassive="false"><saml2:Issuer>{issuer}</saml2:Issuer><saml2p:Extensions><eidas:SPType>public</eidas:SPType><eidas:RequestedAttributes><eidas:RequestedAttribute Name="{PERSON}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/><eidas:RequestedAttribute Name="http://eidas.europa.eu/attributes/naturalperson/CurrentGivenName" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/><eidas:RequestedAttribute Name="http://eidas.europa.eu/attributes/naturalperson/CurrentFamilyName" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/><eidas:RequestedAttribute Name="http://eidas.europa.eu/attributes/naturalperson/DateOfBirth" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/></eidas:RequestedAttributes></saml2p:Extensions><saml2p:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified" AllowCreate="true"/><saml2p:RequestedAuthnContext Comparison="minimum"><saml2:AuthnContextClassRef>{loa}</saml2:AuthnContextClassRef></saml2p:RequestedAuthnContext></saml2p:AuthnRequest>"#,
            now = now_instant(),
            dest = xml_escape(&node.sso_redirect_url),
            acs = xml_escape(&self.acs_url),
            issuer = xml_escape(&self.entity_id),
            PERSON = super::PERSON_IDENTIFIER,
            loa = xml_escape(&self.min_loa),
        );
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflater
            .write_all(xml.as_bytes())
            .map_err(|e| e.to_string())?;
        let deflated = deflater.finish().map_err(|e| e.to_string())?;
        let relay_state = random_id();
        let alg = sig_alg(&self.sign_key)?;
        let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let query = format!(
            "SAMLRequest={}&RelayState={}&SigAlg={}",
            enc(&STANDARD.encode(deflated)),
            enc(&relay_state),
            enc(alg)
        );
        let mut signer =
            Signer::new(MessageDigest::sha256(), &self.sign_key).map_err(|e| e.to_string())?;
        signer.update(query.as_bytes()).map_err(|e| e.to_string())?;
        // ECDSA: DER, as the redirect binding's verifiers (OpenSSL) expect.
        let signature = signer.sign_to_vec().map_err(|e| e.to_string())?;
        let sep = if node.sso_redirect_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(OutgoingRequest {
            id,
            relay_state,
            redirect_url: format!(
                "{}{sep}{query}&Signature={}",
                node.sso_redirect_url,
                enc(&STANDARD.encode(signature))
            ),
        })
    }

    /// HTTP-POST binding: the base64 `SAMLResponse` form field.
    pub fn consume_post(&self, saml_response: &str) -> Result<Verified, Refusal> {
        let compact: String = saml_response.split_whitespace().collect();
        let bytes = STANDARD.decode(compact).map_err(|_| Refusal::Malformed)?;
        let xml = String::from_utf8(bytes).map_err(|_| Refusal::Malformed)?;
        let node = self.node();
        let _g = xml_lock();
        self.process_response(&node, &xml)
    }

    /// HTTP-Artifact binding: resolves `SAMLart` with a signed SOAP
    /// `ArtifactResolve` to the node's artifact resolution service, then
    /// treats the response it carries like a POSTed one.
    pub async fn consume_artifact(&self, artifact: &str) -> Result<Verified, Refusal> {
        let node = self.node();
        let (url, resolve_id, body) = self.artifact_resolve(&node, artifact)?;
        let text = tokio::time::timeout(self.artifact_timeout, self.soap(&url, body))
            .await
            .map_err(|_| {
                tracing::warn!("artifact resolution timed out");
                Refusal::Unavailable
            })??;
        let _g = xml_lock();
        self.process_artifact_response(&node, &text, &resolve_id)
    }

    /// One SOAP exchange with the node's artifact resolution service.
    async fn soap(&self, url: &str, body: String) -> Result<String, Refusal> {
        use http_body_util::BodyExt;
        let req = hyper::Request::post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header(
                "SOAPAction",
                "http://www.oasis-open.org/committees/security",
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|_| Refusal::Artifact)?;
        let reply = self.http.request(req).await.map_err(|e| {
            tracing::warn!(error = %e, "artifact resolution failed");
            Refusal::Unavailable
        })?;
        if !reply.status().is_success() {
            tracing::warn!(
                status = reply.status().as_u16(),
                "artifact resolution refused"
            );
            return Err(Refusal::Artifact);
        }
        let bytes = http_body_util::Limited::new(reply.into_body(), MAX_SOAP)
            .collect()
            .await
            .map_err(|_| Refusal::Malformed)?
            .to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| Refusal::Malformed)
    }

    /// The endpoint, the ID and the signed SOAP body for one artifact.
    fn artifact_resolve(
        &self,
        node: &NodeMetadata,
        artifact: &str,
    ) -> Result<(String, String, String), Refusal> {
        // SAML 2.0 type 0x0004: type (2) | endpoint index (2) | SourceID (20) | handle (20).
        let raw = STANDARD
            .decode(artifact.trim())
            .map_err(|_| Refusal::Artifact)?;
        if raw.len() != 44 || raw[0..2] != [0, 4] {
            return Err(Refusal::Artifact);
        }
        let index = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        let source = openssl::sha::sha1(node.entity_id.as_bytes());
        if !openssl::memcmp::eq(&raw[4..24], &source) {
            return Err(Refusal::Issuer);
        }
        let url = node
            .ars
            .iter()
            .find(|(i, _)| *i == index)
            .or_else(|| node.ars.first())
            .map(|(_, u)| u.clone())
            .ok_or(Refusal::Artifact)?;
        let id = random_id();
        let alg = sig_alg(&self.sign_key).map_err(|_| Refusal::Unavailable)?;
        let template = format!(
            r##"<saml2p:ArtifactResolve xmlns:saml2p="{NS_SAMLP}" xmlns:saml2="{NS_SAML}" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}"><saml2:Issuer>{issuer}</saml2:Issuer><ds:Signature xmlns:ds="{NS_DS}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature><saml2p:Artifact>{art}</saml2p:Artifact></saml2p:ArtifactResolve>"##,
            now = now_instant(),
            dest = xml_escape(&url),
            issuer = xml_escape(&self.entity_id),
            art = xml_escape(artifact.trim()),
        );
        let signed = {
            let _g = xml_lock();
            XmlSec::sign_xml(template, &self.sign_key_pkcs8).map_err(|e| {
                tracing::error!(error = %e, "signing ArtifactResolve failed");
                Refusal::Unavailable
            })?
        };
        // The signed element without the XML declaration libxml writes.
        let trimmed = signed.trim_start();
        let body_xml = match trimmed.strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or(rest, |(_, body)| body),
            None => trimmed,
        }
        .trim();
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soap11:Envelope xmlns:soap11="{NS_SOAP}"><soap11:Body>{body_xml}</soap11:Body></soap11:Envelope>"#
        );
        Ok((url, id, body))
    }

    fn process_artifact_response(
        &self,
        node: &NodeMetadata,
        soap: &str,
        resolve_id: &str,
    ) -> Result<Verified, Refusal> {
        let doc = parse(soap)?;
        let octx = xpath(&doc)?;
        let ar = nodes(&octx, "/soap:Envelope/soap:Body/samlp:ArtifactResponse")?;
        let [ar] = ar.as_slice() else {
            return Err(Refusal::Artifact);
        };
        let ar_id = ar.get_attribute("ID").ok_or(Refusal::Malformed)?;
        if nodes(&octx, "//samlp:ArtifactResponse")?.len() != 1 {
            return Err(Refusal::Wrapping);
        }
        if count(&doc, "//ds:Signature")? == 0 {
            return Err(Refusal::Unsigned);
        }
        drop(octx);
        drop(doc);
        let reduced = self.reduce(node, soap)?;
        let doc = parse(&reduced)?;
        let root = doc.get_root_element().ok_or(Refusal::Malformed)?;
        if !is(&root, NS_SAMLP, "ArtifactResponse") {
            return Err(Refusal::Unsigned);
        }
        if root.get_attribute("ID").as_deref() != Some(ar_id.as_str()) {
            return Err(Refusal::Wrapping);
        }
        if root.get_attribute("InResponseTo").as_deref() != Some(resolve_id) {
            return Err(Refusal::Artifact);
        }
        let ctx = xpath(&doc)?;
        let issuer = values(&ctx, "/samlp:ArtifactResponse/saml:Issuer")?;
        if issuer.len() != 1 || issuer[0].trim() != node.entity_id {
            return Err(Refusal::Issuer);
        }
        let status = nodes(
            &ctx,
            "/samlp:ArtifactResponse/samlp:Status/samlp:StatusCode",
        )?;
        if status.len() != 1 || status[0].get_attribute("Value").as_deref() != Some(STATUS_SUCCESS)
        {
            return Err(Refusal::Status);
        }
        let issued = root
            .get_attribute("IssueInstant")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or(Refusal::Malformed)?;
        self.check_issue_instant(issued)?;
        let mut inner = nodes(&ctx, "/samlp:ArtifactResponse/samlp:Response")?;
        if inner.len() != 1 {
            return Err(Refusal::Malformed);
        }
        // A document of its own: libxml declares the namespaces the response
        // inherited, and exclusive c14n makes its signature independent of them.
        let mut own = Document::new().map_err(|_| Refusal::Malformed)?;
        inner[0].unlink();
        let copy = own
            .import_node(&mut inner[0])
            .map_err(|_| Refusal::Malformed)?;
        own.set_root_element(&copy);
        let inner_xml = own.to_string();
        drop(own);
        self.process_response(node, &inner_xml)
    }

    /// Every signature verified, and the document reduced to what they cover.
    fn reduce(&self, node: &NodeMetadata, xml: &str) -> Result<String, Refusal> {
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            &node.certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(ALLOWED),
        )
        .map_err(|_| Refusal::Signature)
    }

    fn check_issue_instant(&self, t: DateTime<Utc>) -> Result<(), Refusal> {
        let now = Utc::now();
        if t > now + self.skew || t + ChronoDuration::seconds(MAX_MESSAGE_AGE) + self.skew < now {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// A `Response` (POST, or carried by an artifact): verified, reduced to
    /// its signed part, decrypted if need be, and checked.
    ///
    /// Besides reading only what the signatures cover, the shape is pinned:
    /// the signed element must sit where a SAML response puts it (the
    /// Response is the document, the assertion its direct child) and there
    /// is exactly one of each; a signed element moved elsewhere, or any
    /// extra Response or assertion, is a wrapping attempt and refused.
    fn process_response(&self, node: &NodeMetadata, xml: &str) -> Result<Verified, Refusal> {
        let original = parse(xml)?;
        let root = original.get_root_element().ok_or(Refusal::Malformed)?;
        if !is(&root, NS_SAMLP, "Response") {
            return Err(Refusal::Malformed);
        }
        let root_id = root.get_attribute("ID").ok_or(Refusal::Malformed)?;
        let octx = xpath(&original)?;
        if nodes(&octx, "//samlp:Response")?.len() != 1
            || nodes(&octx, "//saml:Assertion | //saml:EncryptedAssertion")?.len() != 1
        {
            return Err(Refusal::Wrapping);
        }
        let direct = nodes(
            &octx,
            "/samlp:Response/saml:Assertion | /samlp:Response/saml:EncryptedAssertion",
        )?;
        let [direct] = direct.as_slice() else {
            return Err(Refusal::Wrapping);
        };
        let direct_id = direct.get_attribute("ID");
        let encrypted_only = is(direct, NS_SAML, "EncryptedAssertion");
        if count(&original, "//ds:Signature")? == 0 {
            if encrypted_only {
                // The signature may be inside: decrypt first, then the
                // assertion alone must be signed.
                let mut enc = nodes(&octx, "/samlp:Response/saml:EncryptedAssertion")?;
                let assertion_xml = self.decrypt(&octx, &enc[0])?;
                enc[0].unlink();
                let assertion = self.verified_decrypted(node, &assertion_xml, true)?;
                return self.check_assertion(node, &assertion, None);
            }
            return Err(Refusal::Unsigned);
        }
        drop(octx);
        drop(original);
        let reduced = self.reduce(node, xml)?;
        let doc = parse(&reduced)?;
        let root = doc.get_root_element().ok_or(Refusal::Malformed)?;
        if is(&root, NS_SAML, "Assertion") {
            // Only the assertion is signed: the unsigned response around it
            // was dropped, the assertion alone speaks (its subject
            // confirmation carries InResponseTo and Recipient).
            if root.get_attribute("ID") != direct_id || direct_id.is_none() {
                return Err(Refusal::Wrapping);
            }
            let assertion: Assertion = reduced.parse().map_err(|_| Refusal::Malformed)?;
            return self.check_assertion(node, &assertion, None);
        }
        if !is(&root, NS_SAMLP, "Response") {
            return Err(Refusal::Unsigned);
        }
        if root.get_attribute("ID").as_deref() != Some(root_id.as_str()) {
            return Err(Refusal::Wrapping);
        }
        // The response is signed (it is the reduced root).
        let ctx = xpath(&doc)?;
        let plain = nodes(&ctx, "/samlp:Response/saml:Assertion")?;
        let mut encrypted = nodes(&ctx, "/samlp:Response/saml:EncryptedAssertion")?;
        if plain.len() + encrypted.len() != 1 || count(&doc, "//saml:Assertion")? != plain.len() {
            return Err(Refusal::Malformed);
        }
        let decrypted = match encrypted.first_mut() {
            Some(ea) => {
                let assertion_xml = self.decrypt(&ctx, ea)?;
                ea.unlink();
                Some(self.verified_decrypted(node, &assertion_xml, false)?)
            }
            None => None,
        };
        let response_xml = doc.to_string();
        let response: Response = response_xml.parse().map_err(|_| Refusal::Malformed)?;
        self.check_response(node, &response)?;
        let assertion = match decrypted {
            Some(a) => a,
            None => response.assertion.clone().ok_or(Refusal::Malformed)?,
        };
        let in_response_to = response
            .in_response_to
            .clone()
            .ok_or(Refusal::IdpInitiated)?;
        self.check_assertion(node, &assertion, Some(&in_response_to))
    }

    /// A decrypted assertion: if it carries a signature, that must verify
    /// too; what it says is read from the verified part only.
    /// `must_be_signed`: nothing else vouches for it (the response was not
    /// signed).
    fn verified_decrypted(
        &self,
        node: &NodeMetadata,
        xml: &str,
        must_be_signed: bool,
    ) -> Result<Assertion, Refusal> {
        let doc = parse(xml)?;
        let root = doc.get_root_element().ok_or(Refusal::Malformed)?;
        if !is(&root, NS_SAML, "Assertion") {
            return Err(Refusal::Decryption);
        }
        let text = if count(&doc, "//ds:Signature")? > 0 {
            let reduced = self.reduce(node, xml)?;
            let rdoc = parse(&reduced)?;
            let rroot = rdoc.get_root_element().ok_or(Refusal::Malformed)?;
            if !is(&rroot, NS_SAML, "Assertion")
                || rroot.get_attribute("ID") != root.get_attribute("ID")
            {
                return Err(Refusal::Wrapping);
            }
            reduced
        } else if must_be_signed {
            return Err(Refusal::Unsigned);
        } else {
            xml.to_owned()
        };
        text.parse().map_err(|_| Refusal::Malformed)
    }

    fn check_response(&self, node: &NodeMetadata, r: &Response) -> Result<(), Refusal> {
        if r.version != "2.0" {
            return Err(Refusal::Malformed);
        }
        if r.destination.as_deref() != Some(self.acs_url.as_str()) {
            return Err(Refusal::Destination);
        }
        if let Some(issuer) = &r.issuer
            && issuer.value.as_deref().map(str::trim) != Some(node.entity_id.as_str())
        {
            return Err(Refusal::Issuer);
        }
        let status = r
            .status
            .as_ref()
            .and_then(|s| s.status_code.value.as_deref());
        if status != Some(STATUS_SUCCESS) {
            return Err(Refusal::Status);
        }
        self.check_issue_instant(r.issue_instant)?;
        if r.in_response_to.is_none() {
            return Err(Refusal::IdpInitiated);
        }
        Ok(())
    }

    fn check_assertion(
        &self,
        node: &NodeMetadata,
        a: &Assertion,
        in_response_to: Option<&str>,
    ) -> Result<Verified, Refusal> {
        let now = Utc::now();
        if a.issuer.value.as_deref().map(str::trim) != Some(node.entity_id.as_str()) {
            return Err(Refusal::Issuer);
        }
        self.check_issue_instant(a.issue_instant)?;
        let conditions = a.conditions.as_ref().ok_or(Refusal::Audience)?;
        let not_on_or_after = conditions.not_on_or_after.ok_or(Refusal::Expired)?;
        if now >= not_on_or_after + self.skew {
            return Err(Refusal::Expired);
        }
        if conditions.not_before.is_some_and(|nb| now + self.skew < nb) {
            return Err(Refusal::Expired);
        }
        // Every AudienceRestriction must name us (they are ANDed), and there
        // must be at least one.
        let restrictions = conditions
            .audience_restrictions
            .as_deref()
            .unwrap_or_default();
        if restrictions.is_empty()
            || !restrictions
                .iter()
                .all(|r| r.audience.iter().any(|x| x.trim() == self.entity_id))
        {
            return Err(Refusal::Audience);
        }
        // A bearer confirmation for our ACS, in time, answering our request.
        let confirmations = a
            .subject
            .as_ref()
            .and_then(|s| s.subject_confirmations.as_deref())
            .unwrap_or_default();
        let mut first = Refusal::Recipient;
        let mut request_id = None;
        for c in confirmations
            .iter()
            .filter(|c| c.method.as_deref() == Some(BEARER))
        {
            let Some(d) = &c.subject_confirmation_data else {
                continue;
            };
            if d.recipient.as_deref() != Some(self.acs_url.as_str()) {
                first = Refusal::Recipient;
                continue;
            }
            match d.not_on_or_after {
                Some(t) if now < t + self.skew => {}
                _ => {
                    first = Refusal::Expired;
                    continue;
                }
            }
            if d.not_before.is_some_and(|nb| now + self.skew < nb) {
                first = Refusal::Expired;
                continue;
            }
            let Some(irt) = d.in_response_to.as_deref() else {
                first = Refusal::IdpInitiated;
                continue;
            };
            if in_response_to.is_some_and(|r| r != irt) {
                first = Refusal::UnknownRequest;
                continue;
            }
            request_id = Some(irt.to_owned());
            break;
        }
        let request_id = request_id.ok_or(first)?;
        let loa = a
            .authn_statements
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.authn_context.as_ref()?.value.as_ref()?.value.clone())
            .next();
        let person: Vec<String> = a
            .attribute_statements
            .as_deref()
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.attributes.iter())
            .filter(|at| {
                at.name.as_deref() == Some(super::PERSON_IDENTIFIER)
                    || (at.name.is_none()
                        && at.friendly_name.as_deref() == Some("PersonIdentifier"))
            })
            .flat_map(|at| at.values.iter().filter_map(|v| v.value.clone()))
            .collect();
        // Two different identifiers for one person: take neither.
        let person_identifier = match person.as_slice() {
            [one] => Some(one.clone()),
            [] => None,
            _ => return Err(Refusal::PeselInvalid),
        };
        let remember_until = (not_on_or_after + self.skew).timestamp_millis();
        Ok(Verified {
            request_id,
            assertion_key: format!("{}\u{0}{}", node.entity_id, a.id),
            remember_until,
            loa,
            person_identifier,
        })
    }

    /// The decrypted `EncryptedAssertion` (see [`super::xmlenc`]), with our
    /// encryption key: none configured, nothing decrypts.
    fn decrypt(&self, ctx: &Context, ea: &Node) -> Result<String, Refusal> {
        let key = self.enc_key.as_ref().ok_or(Refusal::Decryption)?;
        xmlenc::decrypt(ctx, ea, key).map_err(|_| Refusal::Decryption)
    }
}

fn metadata(entity_id: &str, acs: &str, sign: &X509, enc: Option<&X509>) -> Result<String, String> {
    let key = |usage: &str, cert: &X509, methods: &str| -> Result<String, String> {
        Ok(format!(
            r#"<md:KeyDescriptor use="{usage}"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>{methods}</md:KeyDescriptor>"#,
            cert_b64(cert)?
        ))
    };
    let mut keys = key("signing", sign, "")?;
    if let Some(enc) = enc {
        // What the key can open: ECDH-ES + AES key wrap for EC, RSA-OAEP for
        // RSA; the data by AES-GCM either way.
        let transport = match enc.public_key().map(|k| k.id()) {
            Ok(Id::EC) => format!(
                r#"<md:EncryptionMethod Algorithm="{}"/><md:EncryptionMethod Algorithm="{}"/><md:EncryptionMethod Algorithm="{}"/>"#,
                xmlenc::KW_AES256,
                xmlenc::KW_AES128,
                xmlenc::ECDH_ES
            ),
            _ => format!(
                r#"<md:EncryptionMethod Algorithm="{}"/>"#,
                xmlenc::RSA_OAEP_MGF1P
            ),
        };
        keys.push_str(&key(
            "encryption",
            enc,
            &format!(
                r#"<md:EncryptionMethod Algorithm="{}"/><md:EncryptionMethod Algorithm="{}"/>{transport}"#,
                xmlenc::AES256_GCM,
                xmlenc::AES128_GCM
            ),
        )?);
    }
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="{NS_DS}" entityID="{eid}"><md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="{NS_SAMLP}">{keys}<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified</md:NameIDFormat><md:AssertionConsumerService Binding="{BINDING_ARTIFACT}" Location="{acs}" index="0" isDefault="true"/><md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}" index="1"/></md:SPSSODescriptor></md:EntityDescriptor>
"#,
        eid = xml_escape(entity_id),
        acs = xml_escape(acs),
    ))
}

/// The node's metadata file: its entity ID, HTTP-Redirect SSO endpoint,
/// SOAP artifact resolution endpoints and signing certificates. Refused
/// without a signing certificate (samael would skip verification without
/// one), an entity ID or an SSO endpoint.
fn read_node_metadata(md_path: &Path) -> Result<NodeMetadata, String> {
    let md_text = std::fs::read_to_string(md_path)
        .map_err(|e| format!("national_node.idp_metadata_file {}: {e}", md_path.display()))?;
    let (idp, certs) = {
        let _g = xml_lock();
        let idp: EntityDescriptor = md_text
            .parse()
            .map_err(|e| format!("national_node.idp_metadata_file: not SAML metadata: {e}"))?;
        let sp = samael::service_provider::ServiceProvider {
            idp_metadata: idp.clone(),
            ..Default::default()
        };
        let certs = sp
            .idp_signing_certs()
            .map_err(|e| format!("national_node.idp_metadata_file: {e}"))?
            .unwrap_or_default();
        (idp, certs)
    };
    if certs.is_empty() {
        return Err(
            "national_node.idp_metadata_file: no signing certificate in the IdP metadata".into(),
        );
    }
    let entity_id = idp
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or("national_node.idp_metadata_file: no entityID")?;
    let descriptors = idp.idp_sso_descriptors.clone().unwrap_or_default();
    let sso_redirect_url = descriptors
        .iter()
        .flat_map(|d| d.single_sign_on_services.iter())
        .find(|e| e.binding == BINDING_REDIRECT)
        .map(|e| e.location.clone())
        .ok_or("national_node.idp_metadata_file: no HTTP-Redirect SingleSignOnService")?;
    let ars = descriptors
        .iter()
        .flat_map(|d| d.artifact_resolution_service.iter())
        .filter(|e| e.binding == BINDING_SOAP)
        .map(|e| (e.index, e.location.clone()))
        .collect();
    Ok(NodeMetadata {
        entity_id,
        sso_redirect_url,
        ars,
        certs,
    })
}

/// The artifact back channel's connector: native TLS (OpenSSL) 1.2 or newer
/// with the system's CAs plus `artifact_ca_file`, and the client certificate
/// when the node asks for one. Plain `http://` stays possible for a test
/// node; redirects are never followed (the client does not).
fn back_channel_tls(
    s: &Settings,
) -> Result<hyper_tls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, String> {
    let n = &s.national_node;
    let mut tls = native_tls::TlsConnector::builder();
    tls.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(path) = &n.artifact_ca_file {
        let what = "national_node.artifact_ca_file";
        let pem = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| format!("{what}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{what}: no PEM certificate in {}", path.display()));
        }
        for cert in certs {
            let der = cert.to_der().map_err(|e| format!("{what}: {e}"))?;
            tls.add_root_certificate(
                native_tls::Certificate::from_der(&der).map_err(|e| format!("{what}: {e}"))?,
            );
        }
    }
    if let (Some(path), Some(key)) = (
        &n.artifact_client_certificate_file,
        &s.secrets.saml_artifact_client_key,
    ) {
        let what = "national_node.artifact_client_certificate_file";
        let chain = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let first = X509::from_pem(&chain).map_err(|e| format!("{what}: {e}"))?;
        // native-tls takes PKCS#8 only; any PEM private key is accepted here.
        let key = PKey::private_key_from_pem(key.expose_secret().as_bytes())
            .map_err(|_| "secrets.saml_artifact_client_key: not a PEM private key".to_string())?;
        if !first
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false)
        {
            return Err(format!(
                "{what} does not match secrets.saml_artifact_client_key"
            ));
        }
        let pkcs8 = key
            .private_key_to_pem_pkcs8()
            .map_err(|e| format!("secrets.saml_artifact_client_key: {e}"))?;
        tls.identity(
            native_tls::Identity::from_pkcs8(&chain, &pkcs8).map_err(|e| format!("{what}: {e}"))?,
        );
    }
    let tls = tls
        .build()
        .map_err(|e| format!("national_node: the back channel's TLS: {e}"))?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    Ok(hyper_tls::HttpsConnector::from((
        http,
        tokio_native_tls::TlsConnector::from(tls),
    )))
}

/// Parses untrusted XML: no DTD (no entity tricks), nothing from the network.
fn parse(xml: &str) -> Result<Document, Refusal> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(Refusal::Malformed);
    }
    Parser::default()
        .parse_string_with_options(
            xml,
            libxml::parser::ParserOptions {
                // Malformed is refused, never repaired.
                recover: false,
                no_net: true,
                no_blanks: false,
                ..Default::default()
            },
        )
        .map_err(|_| Refusal::Malformed)
}

fn xpath(doc: &Document) -> Result<Context, Refusal> {
    let ctx = Context::new(doc).map_err(|_| Refusal::Malformed)?;
    for (p, ns) in [
        ("samlp", NS_SAMLP),
        ("saml", NS_SAML),
        ("ds", NS_DS),
        ("xenc", NS_XENC),
        ("soap", NS_SOAP),
    ] {
        ctx.register_namespace(p, ns)
            .map_err(|_| Refusal::Malformed)?;
    }
    Ok(ctx)
}

fn nodes(ctx: &Context, xp: &str) -> Result<Vec<Node>, Refusal> {
    Ok(ctx
        .evaluate(xp)
        .map_err(|_| Refusal::Malformed)?
        .get_nodes_as_vec())
}

fn values(ctx: &Context, xp: &str) -> Result<Vec<String>, Refusal> {
    Ok(nodes(ctx, xp)?.iter().map(Node::get_content).collect())
}

fn count(doc: &Document, xp: &str) -> Result<usize, Refusal> {
    Ok(nodes(&xpath(doc)?, xp)?.len())
}

fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.get_name() == local && node.get_namespace().is_some_and(|n| n.get_href() == ns)
}
