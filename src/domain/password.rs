//! The password policy of RULES.md ("minimum 8 znaków w tym wielka litera oraz
//! cyfra, bez polskich znaków"): [`NewPassword`] can only hold a password that
//! passes every rule; [`LoginPassword`] only bounds what a login may send.

use super::pesel::Pesel;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Upper bound on password length: bounds the hashing cost of one request.
pub const MAX_LENGTH: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordViolation {
    TooShort,
    TooLong,
    NoUppercase,
    NoDigit,
    InvalidCharacters,
    ContainsPesel,
    TooCommon,
    Mismatch,
    Required,
}

impl PasswordViolation {
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "password_too_short",
            Self::TooLong => "password_too_long",
            Self::NoUppercase => "password_no_uppercase",
            Self::NoDigit => "password_no_digit",
            Self::InvalidCharacters => "password_invalid_characters",
            Self::ContainsPesel => "password_contains_pesel",
            Self::TooCommon => "password_too_common",
            Self::Mismatch => "password_mismatch",
            Self::Required => "password_required",
        }
    }

    /// The JSON field a violation belongs to.
    pub fn field(self) -> &'static str {
        match self {
            Self::Mismatch => "passwordRepeat",
            _ => "password",
        }
    }
}

/// A password that satisfies the whole policy. The secret never prints.
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Checks every rule and reports all violations at once. `pesel` is the
    /// (valid) PESEL of the same request, when it parsed.
    pub fn parse(
        password: &str,
        repeat: &str,
        pesel: Option<&Pesel>,
        min_length: usize,
    ) -> Result<Self, Vec<PasswordViolation>> {
        let mut violations = Vec::new();
        let length = password.chars().count();
        if length < min_length {
            violations.push(PasswordViolation::TooShort);
        }
        if length > MAX_LENGTH {
            violations.push(PasswordViolation::TooLong);
        }
        if !password.bytes().any(|b| b.is_ascii_uppercase()) {
            violations.push(PasswordViolation::NoUppercase);
        }
        if !password.bytes().any(|b| b.is_ascii_digit()) {
            violations.push(PasswordViolation::NoDigit);
        }
        if !password.chars().all(|c| (' '..='~').contains(&c)) {
            violations.push(PasswordViolation::InvalidCharacters);
        }
        if let Some(pesel) = pesel
            && password.contains(&pesel.digits())
        {
            violations.push(PasswordViolation::ContainsPesel);
        }
        if length <= MAX_LENGTH && COMMON.contains(password.to_ascii_lowercase().as_str()) {
            violations.push(PasswordViolation::TooCommon);
        }
        if password != repeat {
            violations.push(PasswordViolation::Mismatch);
        }
        if violations.is_empty() {
            Ok(Self(SecretString::from(password.to_owned())))
        } else {
            Err(violations)
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What a login may send: present and not longer than [`MAX_LENGTH`]. The
/// policy itself is not checked at login (older passwords stay valid).
#[derive(Debug)]
pub struct LoginPassword(SecretString);

impl LoginPassword {
    pub fn parse(password: &str) -> Result<Self, PasswordViolation> {
        match password.chars().count() {
            0 => Err(PasswordViolation::Required),
            n if n > MAX_LENGTH => Err(PasswordViolation::TooLong),
            _ => Ok(Self(SecretString::from(password.to_owned()))),
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::PasswordViolation::*;
    use super::*;
    use time::macros::date;

    fn check(p: &str) -> Vec<PasswordViolation> {
        NewPassword::parse(p, p, None, 8).err().unwrap_or_default()
    }

    #[test]
    fn a_good_password_passes() {
        assert!(NewPassword::parse("Spis2021Ok", "Spis2021Ok", None, 8).is_ok());
    }

    #[test]
    fn each_rule_reports_its_code() {
        assert_eq!(check("Ab1"), vec![TooShort]);
        assert_eq!(check("abcdefg1x"), vec![NoUppercase]);
        assert_eq!(check("Abcdefghx"), vec![NoDigit]);
        assert_eq!(check("Zażółć1Gęślą"), vec![InvalidCharacters]);
        assert_eq!(check("Tab\there1X"), vec![InvalidCharacters]);
        assert_eq!(check(&format!("A1{}", "x".repeat(127))), vec![TooLong]);
        assert_eq!(check("Password1"), vec![TooCommon]);
        assert_eq!(check("Qwerty123"), vec![TooCommon]);
    }

    #[test]
    fn all_violations_are_reported_at_once() {
        let v = NewPassword::parse("ą", "b", None, 8).unwrap_err();
        assert_eq!(
            v,
            vec![TooShort, NoUppercase, NoDigit, InvalidCharacters, Mismatch]
        );
    }

    #[test]
    fn min_length_comes_from_configuration() {
        assert!(NewPassword::parse("Xkcdpq12", "Xkcdpq12", None, 8).is_ok());
        assert_eq!(
            NewPassword::parse("Xkcdpq12", "Xkcdpq12", None, 10).unwrap_err(),
            vec![TooShort]
        );
    }

    #[test]
    fn the_pesel_must_not_be_inside_the_password() {
        let pesel = Pesel::parse("02070803628", date!(2026 - 01 - 01)).unwrap();
        let p = "X02070803628";
        assert_eq!(
            NewPassword::parse(p, p, Some(&pesel), 8).unwrap_err(),
            vec![ContainsPesel]
        );
    }

    #[test]
    fn the_repeat_must_match() {
        assert_eq!(
            NewPassword::parse("Spis2021Ok", "Spis2021ok", None, 8).unwrap_err(),
            vec![Mismatch]
        );
    }

    #[test]
    fn login_password_is_only_bounded() {
        assert!(LoginPassword::parse("anything").is_ok());
        assert_eq!(LoginPassword::parse("").unwrap_err(), Required);
        assert_eq!(LoginPassword::parse(&"x".repeat(129)).unwrap_err(), TooLong);
    }

    #[test]
    fn the_common_list_is_loaded() {
        assert!(COMMON.len() > 4000);
    }
}
