//! eIDAS levels of assurance (Regulation 2015/1502), the order that
//! `national_node.min_loa` is compared in: low < substantial < high.

/// A known level; anything else (a national or unknown URI) is no level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Loa {
    Low,
    Substantial,
    High,
}

const PREFIX: &str = "http://eidas.europa.eu/LoA/";

impl Loa {
    pub fn parse(uri: &str) -> Option<Self> {
        match uri.trim().strip_prefix(PREFIX)? {
            "low" => Some(Self::Low),
            "substantial" => Some(Self::Substantial),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    pub fn uri(self) -> &'static str {
        match self {
            Self::Low => "http://eidas.europa.eu/LoA/low",
            Self::Substantial => "http://eidas.europa.eu/LoA/substantial",
            Self::High => "http://eidas.europa.eu/LoA/high",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_unknown_uris_are_none() {
        let low = Loa::parse("http://eidas.europa.eu/LoA/low").unwrap();
        let sub = Loa::parse("http://eidas.europa.eu/LoA/substantial").unwrap();
        let high = Loa::parse("http://eidas.europa.eu/LoA/high").unwrap();
        assert!(low < sub && sub < high);
        for l in [low, sub, high] {
            assert_eq!(Loa::parse(l.uri()), Some(l));
        }
        for bad in [
            "",
            "substantial",
            "http://eidas.europa.eu/LoA/NotNotified/high",
            "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
        ] {
            assert_eq!(Loa::parse(bad), None, "{bad}");
        }
    }
}
