//! login.gov.pl (the national node) as a SAML 2.0 identity provider: what the
//! service provider protocol hands to the flows. The protocol itself (metadata,
//! `AuthnRequest`, response and artifact processing) lives in [`sp`], built only
//! with the cargo feature `national-node` (it links libxmlsec1); without it,
//! [`ServiceProvider`] cannot be constructed and `national_node.enabled` is a
//! start-up error. The rules that follow a verified response (single-use
//! request, replay, level of assurance, PESEL, the session) are the flows'
//! (`crate::auth::node`).

#[cfg(feature = "national-node")]
mod sp;
#[cfg(feature = "national-node")]
mod xmlenc;
#[cfg(feature = "national-node")]
pub use sp::ServiceProvider;

/// Without the feature there is no service provider: this type has no
/// values, so `AppState::saml` is always `None`.
#[cfg(not(feature = "national-node"))]
pub enum ServiceProvider {}

/// What a response proved, once its signature, issuer, destination, audience,
/// recipient and times were checked. The attributes are still raw: the flow
/// parses them.
#[derive(Clone)]
pub struct Verified {
    /// `InResponseTo`: the ID of the request this service sent.
    pub request_id: String,
    /// The assertion's issuer and ID: replayed IDs are refused.
    pub assertion_key: String,
    /// When the assertion stops being acceptable (its `NotOnOrAfter` plus the
    /// clock skew), in ms since the epoch: how long its ID must be remembered.
    pub remember_until: i64,
    /// `AuthnContextClassRef`.
    pub loa: Option<String>,
    /// eIDAS `PersonIdentifier`.
    pub person_identifier: Option<String>,
}

impl std::fmt::Debug for Verified {
    // The person identifier is a PESEL: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("request_id", &self.request_id)
            .field("loa", &self.loa)
            .finish_non_exhaustive()
    }
}

/// Why a response (or the start of a login) was refused. The label is a
/// bounded metric label and log field; it never carries message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unsigned,
    Signature,
    Wrapping,
    Decryption,
    Issuer,
    Destination,
    Audience,
    Recipient,
    Expired,
    Status,
    IdpInitiated,
    UnknownRequest,
    Browser,
    Replay,
    LoaTooLow,
    PeselMissing,
    PeselInvalid,
    NotInRegistry,
    Artifact,
    Unavailable,
    Disabled,
}

impl Refusal {
    pub const ALL: &'static [Refusal] = &[
        Self::Malformed,
        Self::Unsigned,
        Self::Signature,
        Self::Wrapping,
        Self::Decryption,
        Self::Issuer,
        Self::Destination,
        Self::Audience,
        Self::Recipient,
        Self::Expired,
        Self::Status,
        Self::IdpInitiated,
        Self::UnknownRequest,
        Self::Browser,
        Self::Replay,
        Self::LoaTooLow,
        Self::PeselMissing,
        Self::PeselInvalid,
        Self::NotInRegistry,
        Self::Artifact,
        Self::Unavailable,
        Self::Disabled,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsigned => "unsigned",
            Self::Signature => "signature",
            Self::Wrapping => "wrapping",
            Self::Decryption => "decryption",
            Self::Issuer => "issuer",
            Self::Destination => "destination",
            Self::Audience => "audience",
            Self::Recipient => "recipient",
            Self::Expired => "expired",
            Self::Status => "status",
            Self::IdpInitiated => "idp_initiated",
            Self::UnknownRequest => "unknown_request",
            Self::Browser => "browser_mismatch",
            Self::Replay => "replay",
            Self::LoaTooLow => "loa_too_low",
            Self::PeselMissing => "pesel_missing",
            Self::PeselInvalid => "pesel_invalid",
            Self::NotInRegistry => "not_in_registry",
            Self::Artifact => "artifact",
            Self::Unavailable => "unavailable",
            Self::Disabled => "disabled",
        }
    }
}

/// The eIDAS natural-person attribute that carries the PESEL.
pub const PERSON_IDENTIFIER: &str =
    "http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier";

/// The PESEL in a `PersonIdentifier` value: the bare 11 digits, or the eIDAS
/// form `PL/PL/<digits>` (origin/destination country). Anything else is not a
/// PESEL; the digits still have to pass `Pesel::parse`.
pub fn pesel_of_person_identifier(value: &str) -> &str {
    let v = value.trim();
    v.strip_prefix("PL/PL/").unwrap_or(v)
}

/// A safe place to go after a node login: a same-origin absolute path, never
/// `//host` or `/\host` (which browsers take as another origin).
pub fn safe_return_path(input: Option<&str>) -> String {
    match input {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 512
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_origin() {
        assert_eq!(safe_return_path(Some("/?request=abc")), "/?request=abc");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "",
            "/a b",
        ] {
            assert_eq!(safe_return_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_path(None), "/");
    }

    #[test]
    fn person_identifiers_give_the_digits() {
        assert_eq!(pesel_of_person_identifier("97071225308"), "97071225308");
        assert_eq!(
            pesel_of_person_identifier("PL/PL/97071225308"),
            "97071225308"
        );
        assert_eq!(
            pesel_of_person_identifier("DE/PL/97071225308"),
            "DE/PL/97071225308"
        );
    }

    #[test]
    fn refusal_labels_are_unique() {
        let mut labels: Vec<_> = Refusal::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }
}
