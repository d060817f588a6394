//! RFC 9457 problem details: every error the service sends. `code` is the
//! stable value of API.md; `detail` and violation messages are Polish, or
//! English when `Accept-Language` prefers it.

use crate::auth::AuthError;
use crate::domain::Violation;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Pl,
    En,
}

impl Lang {
    /// English only when the highest-weighted language in `Accept-Language` is English.
    pub fn from_request(req: &HttpRequest) -> Self {
        let Some(value) = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::Pl;
        };
        let mut best: Option<(f32, &str)> = None;
        for part in value.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if !tag.is_empty() && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, tag));
            }
        }
        match best {
            Some((q, tag)) if q > 0.0 && tag.to_ascii_lowercase().starts_with("en") => Lang::En,
            _ => Lang::Pl,
        }
    }
}

#[derive(Serialize)]
struct ViolationBody {
    field: &'static str,
    code: &'static str,
    message: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemBody {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    violations: Option<Vec<ViolationBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until: Option<String>,
}

/// An error response in the making.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    lang: Lang,
    violations: Vec<Violation>,
    retry_after: Option<u64>,
    locked_until: Option<i64>,
    helpline: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, lang: Lang) -> Self {
        Self {
            status,
            code,
            lang,
            violations: Vec::new(),
            retry_after: None,
            locked_until: None,
            helpline: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn from_auth(err: AuthError, lang: Lang, helpline: &str) -> Self {
        use AuthError::*;
        let p = |status, code| Problem::new(status, code, lang);
        match err {
            Validation(v) => Problem {
                violations: v,
                ..p(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            },
            InvalidCredentials => p(StatusCode::UNAUTHORIZED, "invalid_credentials"),
            IdentityNotVerified => p(StatusCode::UNAUTHORIZED, "identity_not_verified"),
            NotAuthenticated => p(StatusCode::UNAUTHORIZED, "not_authenticated"),
            WindowClosed => Problem {
                helpline: Some(helpline.to_owned()),
                ..p(StatusCode::FORBIDDEN, "survey_window_closed")
            },
            CensusNotOpen => p(StatusCode::FORBIDDEN, "census_not_open"),
            CensusClosed => Problem {
                helpline: Some(helpline.to_owned()),
                ..p(StatusCode::FORBIDDEN, "census_closed")
            },
            PeselReserved => Problem {
                helpline: Some(helpline.to_owned()),
                ..p(StatusCode::FORBIDDEN, "pesel_reserved")
            },
            PasswordAlreadyDefined => p(StatusCode::CONFLICT, "password_already_defined"),
            Locked { until, retry_after } => Problem {
                locked_until: Some(until),
                ..p(StatusCode::LOCKED, "account_locked").retry_after(retry_after)
            },
            Overloaded { retry_after } => {
                p(StatusCode::SERVICE_UNAVAILABLE, "overloaded").retry_after(retry_after)
            }
            StoreUnavailable => {
                p(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").retry_after(2)
            }
            NotFound => p(StatusCode::NOT_FOUND, "not_found"),
        }
    }

    fn body(&self) -> ProblemBody {
        let en = self.lang == Lang::En;
        let (title, detail) = texts(self.code, en);
        let mut detail = detail.to_owned();
        if let Some(h) = &self.helpline {
            detail = detail.replace("{helpline}", h);
        }
        if let Some(s) = self.retry_after {
            detail = detail.replace("{seconds}", &s.to_string());
        }
        ProblemBody {
            kind: format!(
                "https://spis.gov.pl/problems/{}",
                self.code.replace('_', "-")
            ),
            title,
            status: self.status.as_u16(),
            code: self.code,
            detail,
            violations: (!self.violations.is_empty()).then(|| {
                self.violations
                    .iter()
                    .map(|v| ViolationBody {
                        field: v.field,
                        code: v.code,
                        message: violation_text(v.code, en),
                    })
                    .collect()
            }),
            retry_after_seconds: self.retry_after,
            locked_until: self.locked_until.map(crate::clock::rfc3339),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(s) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        res.body(serde_json::to_string(&self.body()).unwrap_or_default())
    }
}

/// (title, detail) in the chosen language.
fn texts(code: &str, en: bool) -> (&'static str, &'static str) {
    let (pl, en_t): ((&str, &str), (&str, &str)) = match code {
        "malformed_request" => (
            (
                "Nieprawidłowe żądanie",
                "Treść żądania nie jest poprawnym JSON-em, brakuje pola, pole ma zły typ albo jest nieznane.",
            ),
            (
                "Malformed request",
                "The body is not valid JSON, a field is missing or has the wrong type, or an unknown field is present.",
            ),
        ),
        "payload_too_large" => (
            ("Zbyt duże żądanie", "Treść żądania przekracza 16 KiB."),
            ("Payload too large", "The request body exceeds 16 KiB."),
        ),
        "unsupported_media_type" => (
            (
                "Nieobsługiwany typ treści",
                "Wymagany jest nagłówek Content-Type: application/json.",
            ),
            (
                "Unsupported media type",
                "Content-Type: application/json is required.",
            ),
        ),
        "validation_failed" => (
            ("Błędne dane", "Popraw wskazane pola."),
            ("Validation failed", "Please correct the listed fields."),
        ),
        "invalid_credentials" => (
            (
                "Logowanie nieudane",
                "Nieprawidłowy numer PESEL lub hasło. Jeśli logujesz się pierwszy raz, użyj opcji ZDEFINIUJ HASŁO.",
            ),
            (
                "Login failed",
                "Incorrect PESEL or password. If this is your first visit, use DEFINE PASSWORD.",
            ),
        ),
        "identity_not_verified" => (
            (
                "Nie potwierdzono tożsamości",
                "Numer PESEL lub nazwisko rodowe matki nie zgadzają się z rejestrem.",
            ),
            (
                "Identity not verified",
                "The PESEL or mother's maiden name does not match the registry.",
            ),
        ),
        "not_authenticated" => (
            ("Brak sesji", "Nie jesteś zalogowany albo sesja wygasła."),
            (
                "Not authenticated",
                "You are not logged in or your session has expired.",
            ),
        ),
        "survey_window_closed" => (
            (
                "Czas na samospis minął",
                "Samospis był możliwy przez 14 dni od pierwszego logowania. Spisz się przez telefon: infolinia spisowa {helpline}.",
            ),
            (
                "Survey window closed",
                "Self-enumeration was possible for 14 days from the first login. You can be enumerated by phone: census helpline {helpline}.",
            ),
        ),
        "census_not_open" => (
            (
                "Spis jeszcze się nie rozpoczął",
                "Logowanie będzie możliwe od dnia rozpoczęcia spisu.",
            ),
            ("Census not open", "Login opens when the census starts."),
        ),
        "census_closed" => (
            (
                "Spis zakończony",
                "Spis powszechny został zakończony. Informacje: infolinia spisowa {helpline}.",
            ),
            (
                "Census closed",
                "The census has ended. Information: census helpline {helpline}.",
            ),
        ),
        "pesel_reserved" => (
            (
                "Numer PESEL zastrzeżony",
                "Dla zastrzeżonego numeru PESEL nie można zdefiniować hasła. Zaloguj się przez login.gov.pl lub zadzwoń na infolinię spisową {helpline}.",
            ),
            (
                "PESEL reserved",
                "A password cannot be defined for a reserved PESEL. Log in through login.gov.pl or call the census helpline {helpline}.",
            ),
        ),
        "origin_not_allowed" => (
            (
                "Niedozwolone źródło żądania",
                "Żądanie pochodzi z innej strony niż formularz spisowy.",
            ),
            (
                "Origin not allowed",
                "The request comes from another site than the census form.",
            ),
        ),
        "password_already_defined" => (
            (
                "Hasło już zdefiniowane",
                "Hasło dla tego numeru PESEL zostało już zdefiniowane. Zaloguj się (ZALOGUJ).",
            ),
            (
                "Password already defined",
                "A password has already been defined for this PESEL. Please log in.",
            ),
        ),
        "account_locked" => (
            (
                "Logowanie zablokowane",
                "Po pięciu błędnych próbach logowanie jest zablokowane. Spróbuj ponownie za {seconds} s.",
            ),
            (
                "Account locked",
                "Login is blocked after five failed attempts. Try again in {seconds} s.",
            ),
        ),
        "rate_limited" => (
            (
                "Zbyt wiele prób",
                "Zbyt wiele żądań z tego adresu. Spróbuj ponownie za {seconds} s.",
            ),
            (
                "Too many requests",
                "Too many requests from this address. Try again in {seconds} s.",
            ),
        ),
        "overloaded" => (
            (
                "Serwis przeciążony",
                "Bardzo wiele osób loguje się w tej chwili. Spróbuj ponownie za {seconds} s.",
            ),
            (
                "Service overloaded",
                "Very many people are logging in right now. Try again in {seconds} s.",
            ),
        ),
        "store_unavailable" => (
            (
                "Usługa chwilowo niedostępna",
                "Nie można teraz sprawdzić danych logowania. Spróbuj ponownie za chwilę.",
            ),
            (
                "Service temporarily unavailable",
                "Login data cannot be checked right now. Please try again shortly.",
            ),
        ),
        "admin_disabled" => (
            (
                "API administracyjne wyłączone",
                "Nie skonfigurowano tokenu administracyjnego.",
            ),
            ("Admin API disabled", "No admin token is configured."),
        ),
        "not_found" => (
            ("Nie znaleziono", "Nie ma takiego zasobu."),
            ("Not found", "No such resource."),
        ),
        "method_not_allowed" => (
            (
                "Niedozwolona metoda",
                "Ta metoda HTTP nie jest obsługiwana dla tego zasobu.",
            ),
            (
                "Method not allowed",
                "This HTTP method is not supported for this resource.",
            ),
        ),
        _ => (
            (
                "Błąd wewnętrzny",
                "Wystąpił nieoczekiwany błąd. Spróbuj ponownie później.",
            ),
            (
                "Internal error",
                "An unexpected error occurred. Please try again later.",
            ),
        ),
    };
    if en { en_t } else { pl }
}

fn violation_text(code: &str, en: bool) -> &'static str {
    let (pl, en_t) = match code {
        "pesel_format" => (
            "PESEL musi składać się z 11 cyfr.",
            "PESEL must be exactly 11 digits.",
        ),
        "pesel_checksum" => (
            "Nieprawidłowy numer PESEL (błędna cyfra kontrolna).",
            "Invalid PESEL (check digit does not match).",
        ),
        "pesel_date" => (
            "Nieprawidłowy numer PESEL (niepoprawna data urodzenia).",
            "Invalid PESEL (birth date is not valid).",
        ),
        "mother_maiden_name_invalid" => (
            "Nazwisko rodowe matki może zawierać tylko litery, spacje, łączniki i apostrofy (do 100 znaków).",
            "Mother's maiden name may contain only letters, spaces, hyphens and apostrophes (up to 100 characters).",
        ),
        "password_too_short" => (
            "Hasło musi mieć co najmniej 8 znaków.",
            "The password must have at least 8 characters.",
        ),
        "password_too_long" => (
            "Hasło może mieć najwyżej 128 znaków.",
            "The password may have at most 128 characters.",
        ),
        "password_no_uppercase" => (
            "Hasło musi zawierać wielką literę.",
            "The password must contain an uppercase letter.",
        ),
        "password_no_digit" => (
            "Hasło musi zawierać cyfrę.",
            "The password must contain a digit.",
        ),
        "password_invalid_characters" => (
            "Hasło nie może zawierać polskich znaków ani znaków spoza ASCII.",
            "The password must not contain Polish or other non-ASCII characters.",
        ),
        "password_contains_pesel" => (
            "Hasło nie może zawierać numeru PESEL.",
            "The password must not contain the PESEL.",
        ),
        "password_too_common" => (
            "To hasło jest zbyt popularne. Wybierz inne.",
            "This password is too common. Choose another.",
        ),
        "password_mismatch" => (
            "Powtórzone hasło różni się od hasła.",
            "The repeated password does not match.",
        ),
        "password_required" => ("Podaj hasło.", "Enter the password."),
        "full_name_invalid" => (
            "Podaj imię i nazwisko (litery, spacje, łączniki).",
            "Enter your full name (letters, spaces, hyphens).",
        ),
        "contact_required" => (
            "Podaj adres e-mail lub numer telefonu.",
            "Enter an email address or a phone number.",
        ),
        "email_invalid" => ("Nieprawidłowy adres e-mail.", "Invalid email address."),
        "phone_invalid" => ("Nieprawidłowy numer telefonu.", "Invalid phone number."),
        "state_invalid" => (
            "Dozwolone wartości: open, all.",
            "Allowed values: open, all.",
        ),
        "cursor_invalid" => (
            "Nieprawidłowy kursor stronicowania.",
            "Invalid paging cursor.",
        ),
        "message_too_long" => (
            "Wiadomość może mieć najwyżej 2000 znaków.",
            "The message may have at most 2000 characters.",
        ),
        _ => ("Nieprawidłowa wartość.", "Invalid value."),
    };
    if en { en_t } else { pl }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn polish_unless_english_is_preferred() {
        let lang = |v: &str| {
            Lang::from_request(
                &TestRequest::default()
                    .insert_header(("Accept-Language", v))
                    .to_http_request(),
            )
        };
        assert_eq!(lang("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(lang("pl-PL,pl;q=0.9,en;q=0.8"), Lang::Pl);
        assert_eq!(lang("de;q=0.9,en;q=0.95"), Lang::En);
        assert_eq!(lang("fr"), Lang::Pl);
        assert_eq!(
            Lang::from_request(&TestRequest::default().to_http_request()),
            Lang::Pl
        );
    }

    #[test]
    fn every_api_code_has_its_own_text() {
        let fallback = texts("no_such_code", false);
        for code in [
            "malformed_request",
            "payload_too_large",
            "unsupported_media_type",
            "validation_failed",
            "invalid_credentials",
            "identity_not_verified",
            "not_authenticated",
            "survey_window_closed",
            "census_not_open",
            "census_closed",
            "pesel_reserved",
            "origin_not_allowed",
            "password_already_defined",
            "account_locked",
            "rate_limited",
            "overloaded",
            "store_unavailable",
        ] {
            assert_ne!(texts(code, false), fallback, "{code}");
            assert_ne!(texts(code, true).1, texts(code, false).1, "{code}");
        }
    }
}
