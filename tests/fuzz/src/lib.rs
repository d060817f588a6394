//! Fuzz targets: each takes the fuzzer's bytes, drives one of the service's
//! parsers and panics when an oracle fails. A panic in the parser itself is
//! a crash too. The oracles attack rather than confirm: independent
//! re-implementations of RULES.md (PESEL, password policy), invariants of the
//! tolerant comparison (maiden name), the contract of the JSON bodies, and
//! the privacy of the registry import's error report.
//!
//! Compiled twice: by `tests/fuzz` (AFL++ binaries in `targets/`) and by the
//! main crate's `tests/fuzz.rs`, which replays `corpus/` and `regressions/`.

use census_login::domain::no_pesel::NoPeselRequest;
use census_login::domain::{LoginPassword, MaidenName, NewPassword, PasswordViolation, Pesel};
use census_login::http::JsonObject;
use census_login::http::public::{DefineBody, LoginBody, NoPeselBody, PeselCheckBody};
use std::collections::BTreeSet;
use time::Date;

/// A fuzz target: the fuzzer's bytes in, a panic out when an oracle fails.
pub type Target = fn(&[u8]);

/// The targets by name, as `run.sh` and the replay test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("pesel", pesel),
    ("maiden_name", maiden_name),
    ("password", password),
    ("json_bodies", json_bodies),
    ("registry_csv", registry_csv),
];

/// The census day: "today" where a target does not vary it.
const CENSUS_DAY: Date = time::macros::date!(2021 - 04 - 01);

/// Valid PESELs (born before the census day) for the targets that need one.
const PESELS: [&str; 4] = ["97071225308", "10210532057", "02070803628", "34071268995"];

/// `Pesel::parse` against an independent reading of RULES.md, with "today"
/// taken from the input so the future-date rule is attacked too.
pub fn pesel(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    // Any day from 1800-01-01 over about 500 years (the range PESEL can encode).
    let offset = u32::from_le_bytes([head[0], head[1], head[2], 0]) % 182_621;
    let today = time::macros::date!(1800 - 01 - 01) + time::Duration::days(i64::from(offset));
    let got = Pesel::parse(input, today);
    let want = reference_pesel(input, (today.year(), today.month() as u8, today.day()));
    match (&got, &want) {
        (Ok(p), Ok((date, male))) => {
            let b = p.birth_date();
            assert_eq!((b.year(), b.month() as u8, b.day()), *date, "{input:?}");
            assert!(b <= today, "{input:?}: born after {today}");
            assert_eq!(
                matches!(p.sex(), census_login::domain::pesel::Sex::Male),
                *male
            );
            assert_eq!(p.digits(), input.trim(), "digits round-trip");
        }
        (Err(e), Err(code)) => assert_eq!(e.code(), *code, "{input:?}"),
        _ => panic!(
            "{input:?} today {today}: parser says {:?}, RULES.md says {want:?}",
            got.as_ref().map(|_| "valid").map_err(|e| e.code())
        ),
    }
}

/// RULES.md "PESEL", written without the service's code or the `time` crate.
fn reference_pesel(input: &str, today: (i32, u8, u8)) -> Result<((i32, u8, u8), bool), &str> {
    let t = input.trim_matches(char::is_whitespace);
    if t.len() != 11 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("pesel_format");
    }
    let d: Vec<u32> = t.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]
        .iter()
        .zip(&d)
        .map(|(w, x)| w * x)
        .sum();
    if (10 - sum % 10) % 10 != d[10] {
        return Err("pesel_checksum");
    }
    let (yy, mm, dd) = (d[0] * 10 + d[1], d[2] * 10 + d[3], d[4] * 10 + d[5]);
    let (century, month) = match mm {
        1..=12 => (1900, mm),
        21..=32 => (2000, mm - 20),
        41..=52 => (2100, mm - 40),
        61..=72 => (2200, mm - 60),
        81..=92 => (1800, mm - 80),
        _ => return Err("pesel_date"),
    };
    let year = century + yy as i32;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let date = (year, month as u8, dd as u8);
    if dd == 0 || dd > days || date > today {
        return Err("pesel_date");
    }
    Ok((date, d[9] % 2 == 1))
}

/// Separators RULES.md lets a maiden name carry (and the comparison ignores).
const SEPARATORS: &[char] = &[' ', '-', '\'', '\u{2019}', '\u{2010}', '\u{2011}'];
/// Polish letters with diacritics and the ASCII letter they compare equal to.
const POLISH: &[(char, char)] = &[
    ('ą', 'a'),
    ('ć', 'c'),
    ('ę', 'e'),
    ('ł', 'l'),
    ('ń', 'n'),
    ('ó', 'o'),
    ('ś', 's'),
    ('ź', 'z'),
    ('ż', 'z'),
    ('Ą', 'A'),
    ('Ć', 'C'),
    ('Ę', 'E'),
    ('Ł', 'L'),
    ('Ń', 'N'),
    ('Ó', 'O'),
    ('Ś', 'S'),
    ('Ź', 'Z'),
    ('Ż', 'Z'),
];

/// `MaidenName`: what is accepted, and the tolerance the rules promise
/// (case, Polish diacritics, separators) holding for any input.
pub fn maiden_name(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let trimmed = input.trim();
    let chars = trimmed.chars().count();
    let accept = (1..=100).contains(&chars)
        && trimmed.chars().any(char::is_alphabetic)
        && trimmed
            .chars()
            .all(|c| c.is_alphabetic() || SEPARATORS.contains(&c));
    let Ok(name) = MaidenName::parse(input) else {
        assert!(!accept, "{input:?} refused");
        return;
    };
    assert!(accept, "{input:?} accepted");
    let n = name.normalized();
    assert!(!n.chars().any(|c| SEPARATORS.contains(&c)), "{n:?}");
    assert!(!n.bytes().any(|b| b.is_ascii_uppercase()), "{n:?}");
    // What is hashed stays about as long as what was typed (NFD and lowercase
    // expand a few code points at most).
    assert!(n.chars().count() <= 4 * chars, "{input:?} -> {n:?}");

    let same = |variant: String, what: &str| {
        if let Ok(v) = MaidenName::parse(&variant) {
            assert_eq!(v.normalized(), n, "{what}: {input:?} vs {variant:?}");
        }
    };
    same(input.to_ascii_uppercase(), "ASCII upper case");
    same(input.to_ascii_lowercase(), "ASCII lower case");
    let fold = |c: char| POLISH.iter().find(|(p, _)| *p == c).map_or(c, |(_, a)| *a);
    same(
        input.chars().map(fold).collect(),
        "Polish letters without diacritics",
    );
    let upper_pl = |c: char| match POLISH.iter().position(|(p, _)| *p == c) {
        Some(i) if i < 9 => POLISH[i + 9].0,
        _ => c,
    };
    same(input.chars().map(upper_pl).collect(), "Polish upper case");
    same(
        input.chars().filter(|c| !SEPARATORS.contains(c)).collect(),
        "separators removed",
    );
    same(
        input
            .chars()
            .map(|c| if SEPARATORS.contains(&c) { '-' } else { c })
            .collect(),
        "separators swapped",
    );
}

/// The password policy against an independent reading of RULES.md: every
/// violation reported, none invented. Byte 0 picks the minimum length, byte 1
/// the PESEL of the request and whether the repeat matches; the rest is the
/// password (and, after a 0xFF, the repeat).
pub fn password(data: &[u8]) {
    let [min, flags, rest @ ..] = data else {
        return;
    };
    let min_length = usize::from(*min % 24) + 1;
    let (pw_bytes, repeat_bytes) = match rest.iter().position(|b| *b == 0xFF) {
        Some(i) if flags & 0x80 != 0 => (&rest[..i], &rest[i + 1..]),
        _ => (rest, rest),
    };
    let (Ok(pw), Ok(repeat)) = (
        std::str::from_utf8(pw_bytes),
        std::str::from_utf8(repeat_bytes),
    ) else {
        return;
    };
    let pesel_text = PESELS[usize::from(flags & 3)];
    let pesel = (flags & 4 != 0).then(|| Pesel::parse(pesel_text, CENSUS_DAY).expect("valid"));

    let mut want = BTreeSet::new();
    let len = pw.chars().count();
    if len < min_length {
        want.insert("password_too_short");
    }
    if len > 128 {
        want.insert("password_too_long");
    }
    if !pw.chars().any(|c| c.is_ascii_uppercase()) {
        want.insert("password_no_uppercase");
    }
    if !pw.chars().any(|c| c.is_ascii_digit()) {
        want.insert("password_no_digit");
    }
    if pw.chars().any(|c| !(0x20..=0x7E).contains(&u32::from(c))) {
        want.insert("password_invalid_characters");
    }
    if pesel.is_some() && pw.contains(pesel_text) {
        want.insert("password_contains_pesel");
    }
    if len <= 128 && common().contains(pw.to_lowercase().as_str()) {
        want.insert("password_too_common");
    }
    if pw != repeat {
        want.insert("password_mismatch");
    }
    let got: BTreeSet<&str> = match NewPassword::parse(pw, repeat, pesel.as_ref(), min_length) {
        Ok(p) => {
            assert_eq!(p.expose(), pw);
            BTreeSet::new()
        }
        Err(list) => {
            assert!(!list.is_empty());
            let codes: BTreeSet<&str> = list.iter().map(|v| v.code()).collect();
            assert_eq!(codes.len(), list.len(), "a violation reported twice");
            codes
        }
    };
    assert_eq!(got, want, "{pw:?} / {repeat:?}, min {min_length}");

    // A login only bounds the password: 1..=128 characters.
    match LoginPassword::parse(pw) {
        Ok(p) => assert!((1..=128).contains(&len) && p.expose() == pw),
        Err(PasswordViolation::Required) => assert_eq!(len, 0),
        Err(PasswordViolation::TooLong) => assert!(len > 128),
        Err(other) => panic!("login password: unexpected {other:?}"),
    }
}

/// The bundled list of common passwords, read here on its own.
fn common() -> &'static BTreeSet<&'static str> {
    static LIST: std::sync::OnceLock<BTreeSet<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../../../src/domain/common-passwords.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// The public API's JSON bodies as the service reads them (byte 0 picks the body;
/// the rest is at most the 16 KiB the service accepts). Whatever serde lets
/// through must be an object with exactly the API's string fields, and the
/// domain parsers must take any such field without a panic.
pub fn json_bodies(data: &[u8]) {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    if body.len() > 16 * 1024 {
        return;
    }
    let fields = |required: &[&str], optional: &[&str]| {
        let v: serde_json::Value = serde_json::from_slice(body).expect("serde took invalid JSON");
        let obj = v.as_object().expect("serde took a non-object");
        for (k, val) in obj {
            assert!(
                required.contains(&k.as_str()) || optional.contains(&k.as_str()),
                "unknown field {k:?} accepted"
            );
            assert!(
                val.is_string() || (val.is_null() && optional.contains(&k.as_str())),
                "{k:?}: {val} accepted"
            );
        }
        for k in required {
            assert!(obj.contains_key(*k), "missing {k:?} accepted");
        }
    };
    match which % 4 {
        0 => {
            if let Ok(JsonObject(b)) = serde_json::from_slice::<JsonObject<PeselCheckBody>>(body) {
                fields(&["pesel"], &[]);
                let _ = Pesel::parse(&b.pesel, CENSUS_DAY);
            }
        }
        1 => {
            if let Ok(JsonObject(b)) = serde_json::from_slice::<JsonObject<DefineBody>>(body) {
                fields(
                    &["pesel", "motherMaidenName", "password", "passwordRepeat"],
                    &[],
                );
                let pesel = Pesel::parse(&b.pesel, CENSUS_DAY).ok();
                if let Ok(n) = MaidenName::parse(&b.mother_maiden_name) {
                    let _ = n.normalized();
                }
                let _ = NewPassword::parse(&b.password, &b.password_repeat, pesel.as_ref(), 8);
            }
        }
        2 => {
            if let Ok(JsonObject(b)) = serde_json::from_slice::<JsonObject<LoginBody>>(body) {
                fields(&["pesel", "password"], &[]);
                let _ = Pesel::parse(&b.pesel, CENSUS_DAY);
                let _ = LoginPassword::parse(&b.password);
            }
        }
        _ => {
            if let Ok(JsonObject(b)) = serde_json::from_slice::<JsonObject<NoPeselBody>>(body) {
                fields(&["fullName"], &["email", "phone", "message"]);
                if let Ok(r) = NoPeselRequest::parse(
                    &b.full_name,
                    b.email.as_deref(),
                    b.phone.as_deref(),
                    b.message.as_deref(),
                ) {
                    assert!(
                        r.email.is_some() || r.phone.is_some(),
                        "no contact accepted"
                    );
                }
            }
        }
    }
}

/// Words a bad row's reason may use: the rule codes, the fixed text about
/// `reserved`, and the csv crate's position and UTF-8 messages. Anything else
/// is content of the row echoed into the import report, which is personal data.
const REASON_WORDS: &[&str] = &[
    "pesel_format",
    "pesel_checksum",
    "pesel_date",
    "mother_maiden_name_invalid",
    "reserved",
    "must",
    "be",
    "true",
    "false",
    "or",
    "empty",
    "CSV",
    "parse",
    "error",
    "record",
    "line",
    "field",
    "byte",
    "invalid",
    "incomplete",
    "utf",
    "UTF",
    "in",
    "near",
    "sequence",
    "of",
    "bytes",
    "from",
    "index",
];

/// The registry CSV parser: no panic, good rows are valid, bad rows carry a
/// line number after the header, and a reason that echoes nothing of the row.
pub fn registry_csv(data: &[u8]) {
    let Ok((rows, bad)) = census_login::registry::parse(data, CENSUS_DAY) else {
        return;
    };
    let lines = data.iter().filter(|b| **b == b'\n' || **b == b'\r').count() as u64 + 1;
    for row in &rows {
        assert!(Pesel::parse(&row.pesel.digits(), CENSUS_DAY).is_ok());
        assert!(!row.maiden_name.normalized().is_empty());
    }
    let mut last = 0;
    for b in &bad {
        assert!(b.line >= 2 && b.line <= lines, "line {} of {lines}", b.line);
        assert!(b.line >= last, "line numbers go back: {bad:?}");
        last = b.line;
        let words = b
            .reason
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty() && !w.bytes().all(|c| c.is_ascii_digit()));
        for w in words {
            assert!(
                REASON_WORDS.contains(&w),
                "line {}: the reason echoes {w:?}: {:?}",
                b.line,
                b.reason
            );
        }
    }
}
