//! RFC 9457 problem details: every error the service sends. `code` is the
//! stable value of API.md; `detail` and violation messages are Polish, or
//! English when `Accept-Language` prefers it.

use crate::auth::AuthError;
use crate::domain::Violation;
use crate::problem_code::ProblemCode;
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
    message: String,
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

/// The configured values that texts mention, fixed at start-up.
#[derive(Debug, Clone)]
pub struct TextParams {
    pub helpline: String,
    pub window_days: u64,
    pub max_failures: u32,
    pub min_password_length: usize,
}

impl Default for TextParams {
    fn default() -> Self {
        Self {
            helpline: String::new(),
            window_days: 14,
            max_failures: 5,
            min_password_length: 8,
        }
    }
}

impl TextParams {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        Self {
            helpline: s.census.helpline.clone(),
            window_days: s.survey.window.as_secs() / 86_400,
            max_failures: s.lockout.max_failures,
            min_password_length: s.password.min_length,
        }
    }

    pub fn fill(&self, template: &str, retry_after: Option<u64>) -> String {
        let mut text = template
            .replace("{helpline}", &self.helpline)
            .replace("{days}", &self.window_days.to_string())
            .replace("{max_failures}", &self.max_failures.to_string())
            .replace("{min}", &self.min_password_length.to_string());
        if let Some(s) = retry_after {
            text = text.replace("{seconds}", &s.to_string());
        }
        text
    }
}

/// An error response in the making.
#[derive(Debug)]
pub struct Problem {
    code: ProblemCode,
    lang: Lang,
    violations: Vec<Violation>,
    retry_after: Option<u64>,
    locked_until: Option<i64>,
    params: std::sync::Arc<TextParams>,
}

impl Problem {
    pub fn new(code: ProblemCode, lang: Lang) -> Self {
        Self {
            code,
            lang,
            violations: Vec::new(),
            retry_after: None,
            locked_until: None,
            params: std::sync::Arc::default(),
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The texts' configured values (helpline, window, limits).
    pub fn with_params(mut self, params: std::sync::Arc<TextParams>) -> Self {
        self.params = params;
        self
    }

    pub fn code(&self) -> ProblemCode {
        self.code
    }

    pub fn from_auth(err: AuthError, lang: Lang, params: std::sync::Arc<TextParams>) -> Self {
        let problem = Problem::new(err.code(), lang).with_params(params);
        match err {
            AuthError::Validation(violations) => Problem {
                violations,
                ..problem
            },
            AuthError::Locked { until, retry_after } => Problem {
                locked_until: Some(until),
                ..problem.retry_after(retry_after)
            },
            AuthError::Overloaded { retry_after } => problem.retry_after(retry_after),
            AuthError::StoreUnavailable => problem.retry_after(2),
            _ => problem,
        }
    }

    fn body(&self) -> ProblemBody {
        let en = self.lang == Lang::En;
        let (title, detail) = self.code.texts(en);
        ProblemBody {
            kind: format!(
                "https://spis.gov.pl/problems/{}",
                self.code.as_str().replace('_', "-")
            ),
            title,
            status: self.code.status(),
            code: self.code.as_str(),
            detail: self.params.fill(detail, self.retry_after),
            violations: (!self.violations.is_empty()).then(|| {
                self.violations
                    .iter()
                    .map(|v| ViolationBody {
                        field: v.field,
                        code: v.code,
                        message: self.params.fill(violation_text(v.code, en), None),
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
        write!(f, "{} {}", self.code.status(), self.code)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
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

/// Messages of the rule codes of RULES.md (the `violations` of a 422).
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
            "Hasło musi mieć co najmniej {min} znaków.",
            "The password must have at least {min} characters.",
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
    fn texts_carry_the_configured_values() {
        let params = std::sync::Arc::new(TextParams {
            helpline: "+48 1".into(),
            window_days: 21,
            max_failures: 3,
            min_password_length: 12,
        });
        let body = Problem::from_auth(AuthError::WindowClosed, Lang::Pl, params.clone()).body();
        assert!(
            body.detail.contains("21 dni") && body.detail.contains("+48 1"),
            "{}",
            body.detail
        );
        let body = Problem::from_auth(
            AuthError::Validation(vec![Violation::new("password", "password_too_short")]),
            Lang::Pl,
            params,
        )
        .body();
        let message = &body.violations.unwrap()[0].message;
        assert!(message.contains("co najmniej 12 znaków"), "{message}");
    }
}
