//! Mother's maiden name: what is accepted, and the tolerant normalized form
//! that is keyed-hashed and compared (RULES.md, "Mother's maiden name").

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

const MAX_CHARS: usize = 100;

/// A maiden name as typed, trimmed and checked. Its [`normalized`](Self::normalized)
/// form is what gets compared.
#[derive(Clone, PartialEq, Eq)]
pub struct MaidenName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mother's maiden name must be 1-100 letters, spaces, hyphens or apostrophes")]
pub struct MaidenNameError;

impl MaidenNameError {
    pub fn code(self) -> &'static str {
        "mother_maiden_name_invalid"
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\'' | '\u{2019}' | '\u{2010}' | '\u{2011}')
}

impl MaidenName {
    pub fn parse(input: &str) -> Result<Self, MaidenNameError> {
        let trimmed = input.trim();
        let count = trimmed.chars().count();
        let allowed = trimmed
            .chars()
            .all(|c| c.is_alphabetic() || is_separator(c));
        // At least one letter: a name of only hyphens normalizes to nothing.
        let has_letter = trimmed.chars().any(char::is_alphabetic);
        if (1..=MAX_CHARS).contains(&count) && allowed && has_letter {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(MaidenNameError)
        }
    }

    /// Case-, diacritic- and separator-insensitive form:
    /// `Łukasiewicz` → `lukasiewicz`, `Nowak-Kowalska` → `nowakkowalska`.
    pub fn normalized(&self) -> String {
        self.0
            .chars()
            .filter(|c| !is_separator(*c))
            .flat_map(char::to_lowercase)
            .map(fold_undecomposable)
            .collect::<String>()
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .collect()
    }
}

/// Letters that carry a stroke rather than a combining mark, so NFD leaves them whole.
fn fold_undecomposable(c: char) -> char {
    match c {
        'ł' => 'l',
        'đ' => 'd',
        'ø' => 'o',
        'ħ' => 'h',
        'ŧ' => 't',
        'ı' => 'i',
        other => other,
    }
}

impl std::fmt::Debug for MaidenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaidenName(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        MaidenName::parse(s).unwrap().normalized()
    }

    #[test]
    fn comparison_ignores_case_diacritics_and_separators() {
        assert_eq!(norm("Łukasiewicz"), norm("lukasiewicz"));
        assert_eq!(norm("Wójcik"), norm("WOJCIK"));
        assert_eq!(norm("Nowak-Kowalska"), norm("nowak kowalska"));
        assert_eq!(norm("O'Brien"), norm("obrien"));
        assert_eq!(norm("ŻÓŁTOWSKA"), "zoltowska");
        assert_eq!(norm("Źrałek"), "zralek");
    }

    #[test]
    fn different_names_stay_different() {
        assert_ne!(norm("Nowak"), norm("Nowacka"));
    }

    #[test]
    fn accepted_inputs_are_trimmed_letters_and_separators() {
        assert!(MaidenName::parse("  Kowalska ").is_ok());
        assert!(MaidenName::parse("Nowak-Kowalska").is_ok());
        assert!(MaidenName::parse(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn bad_inputs_are_rejected() {
        for bad in ["", "   ", "Kowalska1", "Kow@lska", "---", &"a".repeat(101)] {
            assert_eq!(MaidenName::parse(bad), Err(MaidenNameError), "{bad:?}");
        }
    }
}
