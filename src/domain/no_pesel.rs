//! "Nie posiadam numeru PESEL": a request for another way to be enumerated.
//! Full name plus an email or a phone number, and an optional message.

use super::Violation;

const MAX_NAME: usize = 200;
const MAX_MESSAGE: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoPeselRequest {
    pub full_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub message: Option<String>,
}

impl NoPeselRequest {
    /// Checks every field and reports all violations at once. Empty optional
    /// fields count as absent.
    pub fn parse(
        full_name: &str,
        email: Option<&str>,
        phone: Option<&str>,
        message: Option<&str>,
    ) -> Result<Self, Vec<Violation>> {
        let (email, phone, message) = (non_empty(email), non_empty(phone), non_empty(message));
        let mut v = Vec::new();
        let name = full_name.trim();
        let name_ok = (1..=MAX_NAME).contains(&name.chars().count())
            && name.chars().any(char::is_alphabetic)
            && name
                .chars()
                .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.' | '\u{2019}'));
        if !name_ok {
            v.push(Violation::new("fullName", "full_name_invalid"));
        }
        if email.is_none() && phone.is_none() {
            v.push(Violation::new("email", "contact_required"));
        }
        if email.is_some_and(|e| !valid_email(e)) {
            v.push(Violation::new("email", "email_invalid"));
        }
        if phone.is_some_and(|p| !valid_phone(p)) {
            v.push(Violation::new("phone", "phone_invalid"));
        }
        if message.is_some_and(|m| m.chars().count() > MAX_MESSAGE) {
            v.push(Violation::new("message", "message_too_long"));
        }
        if !v.is_empty() {
            return Err(v);
        }
        Ok(Self {
            full_name: name.to_owned(),
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
            message: message.map(str::to_owned),
        })
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Deliberately loose: one `@`, something on both sides, a dot in the domain.
/// The helpline confirms the address by writing to it.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_whitespace)
        && !domain.contains('@')
}

/// 9-15 digits, optionally with a leading `+` and spaces, hyphens or parentheses.
fn valid_phone(p: &str) -> bool {
    let body = p.strip_prefix('+').unwrap_or(p);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    (9..=15).contains(&digits)
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(r: Result<NoPeselRequest, Vec<Violation>>) -> Vec<&'static str> {
        r.err().unwrap_or_default().iter().map(|v| v.code).collect()
    }

    #[test]
    fn name_and_one_contact_suffice() {
        let r = NoPeselRequest::parse("Jan Kowalski", None, Some("+48 600 100 200"), None).unwrap();
        assert_eq!(r.phone.as_deref(), Some("+48 600 100 200"));
        assert!(
            NoPeselRequest::parse("Anna Nowak", Some("anna@example.pl"), None, Some("")).is_ok()
        );
    }

    #[test]
    fn a_contact_is_required() {
        assert_eq!(
            codes(NoPeselRequest::parse("Jan", Some(" "), None, None)),
            vec!["contact_required"]
        );
    }

    #[test]
    fn all_violations_are_listed() {
        let long = "x".repeat(2001);
        assert_eq!(
            codes(NoPeselRequest::parse(
                "",
                Some("nope"),
                Some("12"),
                Some(&long)
            )),
            vec![
                "full_name_invalid",
                "email_invalid",
                "phone_invalid",
                "message_too_long"
            ]
        );
    }
}
