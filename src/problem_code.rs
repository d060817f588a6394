//! The stable problem codes of API.md in one table: each code's HTTP status,
//! its Polish and English title and detail, and its label in
//! `census_auth_outcomes_total`. `http::problem` renders them; the flows'
//! errors map onto them; metrics pre-create their labels from [`ProblemCode::ALL`].
//!
//! Details are templates: `{helpline}`, `{seconds}`, `{days}` (the survey
//! window) and `{max_failures}` are filled in from the configuration and the
//! request, so the texts never disagree with the settings.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    InvalidCredentials,
    IdentityNotVerified,
    NotAuthenticated,
    SurveyWindowClosed,
    CensusNotOpen,
    CensusClosed,
    PeselReserved,
    OriginNotAllowed,
    PasswordAlreadyDefined,
    ReclaimNotAllowed,
    AccountLocked,
    RateLimited,
    Overloaded,
    StoreUnavailable,
    AdminDisabled,
    NotFound,
    MethodNotAllowed,
    InternalError,
}

/// Title and detail template, in Polish and English.
struct Texts {
    pl: (&'static str, &'static str),
    en: (&'static str, &'static str),
}

impl ProblemCode {
    pub const ALL: &'static [ProblemCode] = &[
        Self::MalformedRequest,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::InvalidCredentials,
        Self::IdentityNotVerified,
        Self::NotAuthenticated,
        Self::SurveyWindowClosed,
        Self::CensusNotOpen,
        Self::CensusClosed,
        Self::PeselReserved,
        Self::OriginNotAllowed,
        Self::PasswordAlreadyDefined,
        Self::ReclaimNotAllowed,
        Self::AccountLocked,
        Self::RateLimited,
        Self::Overloaded,
        Self::StoreUnavailable,
        Self::AdminDisabled,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InternalError,
    ];

    /// The `code` field of the problem body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::IdentityNotVerified => "identity_not_verified",
            Self::NotAuthenticated => "not_authenticated",
            Self::SurveyWindowClosed => "survey_window_closed",
            Self::CensusNotOpen => "census_not_open",
            Self::CensusClosed => "census_closed",
            Self::PeselReserved => "pesel_reserved",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::PasswordAlreadyDefined => "password_already_defined",
            Self::ReclaimNotAllowed => "reclaim_not_allowed",
            Self::AccountLocked => "account_locked",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::StoreUnavailable => "store_unavailable",
            Self::AdminDisabled => "admin_disabled",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InternalError => "internal_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::MalformedRequest => 400,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed => 422,
            Self::InvalidCredentials => 401,
            Self::IdentityNotVerified => 401,
            Self::NotAuthenticated => 401,
            Self::SurveyWindowClosed => 403,
            Self::CensusNotOpen => 403,
            Self::CensusClosed => 403,
            Self::PeselReserved => 403,
            Self::OriginNotAllowed => 403,
            Self::PasswordAlreadyDefined => 409,
            Self::ReclaimNotAllowed => 403,
            Self::AccountLocked => 423,
            Self::RateLimited => 429,
            Self::Overloaded => 503,
            Self::StoreUnavailable => 503,
            Self::AdminDisabled => 503,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::InternalError => 500,
        }
    }

    /// The `result` label of `census_auth_outcomes_total` (the code itself,
    /// but for two older, shorter labels the dashboards use).
    pub fn outcome_label(self) -> &'static str {
        match self {
            Self::AccountLocked => "locked",
            Self::SurveyWindowClosed => "window_closed",
            other => other.as_str(),
        }
    }

    /// (title, detail template) in English or Polish.
    pub fn texts(self, english: bool) -> (&'static str, &'static str) {
        let t = self.table();
        if english { t.en } else { t.pl }
    }

    fn table(self) -> Texts {
        match self {
            Self::MalformedRequest => Texts {
                pl: (
                    "Nieprawidłowe żądanie",
                    "Treść żądania nie jest poprawnym JSON-em, brakuje pola, pole ma zły typ albo jest nieznane.",
                ),
                en: (
                    "Malformed request",
                    "The body is not valid JSON, a field is missing or has the wrong type, or an unknown field is present.",
                ),
            },
            Self::PayloadTooLarge => Texts {
                pl: ("Zbyt duże żądanie", "Treść żądania przekracza 16 KiB."),
                en: ("Payload too large", "The request body exceeds 16 KiB."),
            },
            Self::UnsupportedMediaType => Texts {
                pl: (
                    "Nieobsługiwany typ treści",
                    "Wymagany jest nagłówek Content-Type: application/json.",
                ),
                en: (
                    "Unsupported media type",
                    "Content-Type: application/json is required.",
                ),
            },
            Self::ValidationFailed => Texts {
                pl: ("Błędne dane", "Popraw wskazane pola."),
                en: ("Validation failed", "Please correct the listed fields."),
            },
            Self::InvalidCredentials => Texts {
                pl: (
                    "Logowanie nieudane",
                    "Nieprawidłowy numer PESEL lub hasło. Jeśli logujesz się pierwszy raz, użyj opcji ZDEFINIUJ HASŁO.",
                ),
                en: (
                    "Login failed",
                    "Incorrect PESEL or password. If this is your first visit, use DEFINE PASSWORD.",
                ),
            },
            Self::IdentityNotVerified => Texts {
                pl: (
                    "Nie potwierdzono tożsamości",
                    "Numer PESEL lub nazwisko rodowe matki nie zgadzają się z rejestrem.",
                ),
                en: (
                    "Identity not verified",
                    "The PESEL or mother's maiden name does not match the registry.",
                ),
            },
            Self::NotAuthenticated => Texts {
                pl: ("Brak sesji", "Nie jesteś zalogowany albo sesja wygasła."),
                en: (
                    "Not authenticated",
                    "You are not logged in or your session has expired.",
                ),
            },
            Self::SurveyWindowClosed => Texts {
                pl: (
                    "Czas na samospis minął",
                    "Samospis był możliwy przez {days} dni od pierwszego logowania. Spisz się przez telefon: infolinia spisowa {helpline}.",
                ),
                en: (
                    "Survey window closed",
                    "Self-enumeration was possible for {days} days from the first login. You can be enumerated by phone: census helpline {helpline}.",
                ),
            },
            Self::CensusNotOpen => Texts {
                pl: (
                    "Spis jeszcze się nie rozpoczął",
                    "Logowanie będzie możliwe od dnia rozpoczęcia spisu.",
                ),
                en: ("Census not open", "Login opens when the census starts."),
            },
            Self::CensusClosed => Texts {
                pl: (
                    "Spis zakończony",
                    "Spis powszechny został zakończony. Informacje: infolinia spisowa {helpline}.",
                ),
                en: (
                    "Census closed",
                    "The census has ended. Information: census helpline {helpline}.",
                ),
            },
            Self::PeselReserved => Texts {
                pl: (
                    "Numer PESEL zastrzeżony",
                    "Dla zastrzeżonego numeru PESEL nie można zdefiniować hasła. Zaloguj się przez login.gov.pl lub zadzwoń na infolinię spisową {helpline}.",
                ),
                en: (
                    "PESEL reserved",
                    "A password cannot be defined for a reserved PESEL. Log in through login.gov.pl or call the census helpline {helpline}.",
                ),
            },
            Self::OriginNotAllowed => Texts {
                pl: (
                    "Niedozwolone źródło żądania",
                    "Żądanie pochodzi z innej strony niż formularz spisowy.",
                ),
                en: (
                    "Origin not allowed",
                    "The request comes from another site than the census form.",
                ),
            },
            Self::PasswordAlreadyDefined => Texts {
                pl: (
                    "Hasło już zdefiniowane",
                    "Hasło dla tego numeru PESEL zostało już zdefiniowane. Zaloguj się (ZALOGUJ).",
                ),
                en: (
                    "Password already defined",
                    "A password has already been defined for this PESEL. Please log in.",
                ),
            },
            Self::ReclaimNotAllowed => Texts {
                pl: (
                    "Odzyskanie konta niedostępne",
                    "Konto można odzyskać tylko w ciągu 5 minut od zalogowania przez login.gov.pl. Zaloguj się przez login.gov.pl ponownie.",
                ),
                en: (
                    "Reclaim not allowed",
                    "An account can be reclaimed only within 5 minutes of a login through login.gov.pl. Please log in through login.gov.pl again.",
                ),
            },
            Self::AccountLocked => Texts {
                pl: (
                    "Logowanie zablokowane",
                    "Po {max_failures} błędnych próbach logowanie jest zablokowane. Spróbuj ponownie za {seconds} s.",
                ),
                en: (
                    "Account locked",
                    "Login is blocked after {max_failures} failed attempts. Try again in {seconds} s.",
                ),
            },
            Self::RateLimited => Texts {
                pl: (
                    "Zbyt wiele prób",
                    "Zbyt wiele żądań z tego adresu. Spróbuj ponownie za {seconds} s.",
                ),
                en: (
                    "Too many requests",
                    "Too many requests from this address. Try again in {seconds} s.",
                ),
            },
            Self::Overloaded => Texts {
                pl: (
                    "Serwis przeciążony",
                    "Bardzo wiele osób loguje się w tej chwili. Spróbuj ponownie za {seconds} s.",
                ),
                en: (
                    "Service overloaded",
                    "Very many people are logging in right now. Try again in {seconds} s.",
                ),
            },
            Self::StoreUnavailable => Texts {
                pl: (
                    "Usługa chwilowo niedostępna",
                    "Nie można teraz sprawdzić danych logowania. Spróbuj ponownie za chwilę.",
                ),
                en: (
                    "Service temporarily unavailable",
                    "Login data cannot be checked right now. Please try again shortly.",
                ),
            },
            Self::AdminDisabled => Texts {
                pl: (
                    "API administracyjne wyłączone",
                    "Nie skonfigurowano tokenu administracyjnego.",
                ),
                en: ("Admin API disabled", "No admin token is configured."),
            },
            Self::NotFound => Texts {
                pl: ("Nie znaleziono", "Nie ma takiego zasobu."),
                en: ("Not found", "No such resource."),
            },
            Self::MethodNotAllowed => Texts {
                pl: (
                    "Niedozwolona metoda",
                    "Ta metoda HTTP nie jest obsługiwana dla tego zasobu.",
                ),
                en: (
                    "Method not allowed",
                    "This HTTP method is not supported for this resource.",
                ),
            },
            Self::InternalError => Texts {
                pl: (
                    "Błąd wewnętrzny",
                    "Wystąpił nieoczekiwany błąd. Spróbuj ponownie później.",
                ),
                en: (
                    "Internal error",
                    "An unexpected error occurred. Please try again later.",
                ),
            },
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_texts_in_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            let (pl, en) = (code.texts(false), code.texts(true));
            assert_ne!(pl.1, en.1, "{code}");
            assert!(seen.insert(pl.1), "{code} shares its text");
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }

    #[test]
    fn texts_follow_the_configuration() {
        let (_, detail) = ProblemCode::SurveyWindowClosed.texts(false);
        assert!(detail.contains("{days}") && !detail.contains("14"));
        let (_, detail) = ProblemCode::AccountLocked.texts(true);
        assert!(detail.contains("{max_failures}") && !detail.contains("five"));
    }
}
