//! The PESEL number: the only way to hold one is [`Pesel::parse`], which checks
//! format, checksum and birth date (RULES.md, "PESEL") in that order.

use std::fmt;
use time::{Date, Month};

/// Weights of digits 1-10 in the checksum.
const WEIGHTS: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];

/// A structurally valid PESEL. Deliberately has no `Display`: a PESEL is
/// personal data and must not end up in a log line by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pesel([u8; 11]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeselError {
    #[error("PESEL must be exactly 11 digits")]
    Format,
    #[error("PESEL checksum does not match")]
    Checksum,
    #[error("PESEL birth date does not exist or is in the future")]
    Date,
}

impl PeselError {
    pub fn code(self) -> &'static str {
        match self {
            PeselError::Format => "pesel_format",
            PeselError::Checksum => "pesel_checksum",
            PeselError::Date => "pesel_date",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
}

impl Pesel {
    /// Parses a PESEL, checking it against `today` so that a birth date in the
    /// future is rejected.
    pub fn parse(input: &str, today: Date) -> Result<Self, PeselError> {
        let trimmed = input.trim();
        let bytes = trimmed.as_bytes();
        if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(PeselError::Format);
        }
        let mut digits = [0u8; 11];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        if checksum_digit(&digits[..10]) != digits[10] {
            return Err(PeselError::Checksum);
        }
        let pesel = Pesel(digits);
        match pesel.compute_birth_date() {
            Some(date) if date <= today => Ok(pesel),
            _ => Err(PeselError::Date),
        }
    }

    /// The birth date encoded in digits 1-6, with the century carried by the month.
    pub fn birth_date(&self) -> Date {
        // Parsing guarantees the date exists.
        self.compute_birth_date()
            .expect("a parsed PESEL always has a valid date")
    }

    /// Digit 10: even is female, odd is male.
    pub fn sex(&self) -> Sex {
        if self.0[9].is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        }
    }

    /// The 11 digits, for keyed hashing and for the password rule that a
    /// password must not contain the PESEL. Never log this.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn compute_birth_date(&self) -> Option<Date> {
        let d = &self.0;
        let yy = i32::from(d[0]) * 10 + i32::from(d[1]);
        let mm = d[2] * 10 + d[3];
        let dd = d[4] * 10 + d[5];
        let (century, month) = match mm {
            1..=12 => (1900, mm),
            21..=32 => (2000, mm - 20),
            41..=52 => (2100, mm - 40),
            61..=72 => (2200, mm - 60),
            81..=92 => (1800, mm - 80),
            _ => return None,
        };
        let month = Month::try_from(month).ok()?;
        Date::from_calendar_date(century + yy, month, dd).ok()
    }
}

/// The check digit for the first ten digits: `(10 - sum mod 10) mod 10`.
pub fn checksum_digit(first_ten: &[u8]) -> u8 {
    let sum: u32 = first_ten
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Debug for Pesel {
    /// Shows only the birth-year digits so that a stray `{:?}` leaks nothing useful.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pesel({}{}*********)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 23);

    fn parse(s: &str) -> Result<Pesel, PeselError> {
        Pesel::parse(s, TODAY)
    }

    /// Builds a valid PESEL string from a date and a 4-digit serial+sex part.
    fn make(date: Date, serial: u16) -> String {
        let year = date.year();
        let offset = match year {
            1800..=1899 => 80,
            1900..=1999 => 0,
            2000..=2099 => 20,
            2100..=2199 => 40,
            _ => 60,
        };
        let s = format!(
            "{:02}{:02}{:02}{:04}",
            year % 100,
            u8::from(date.month()) + offset,
            date.day(),
            serial
        );
        let digits: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        format!("{s}{}", checksum_digit(&digits))
    }

    #[test]
    fn the_two_printed_examples_fail_the_checksum() {
        assert_eq!(parse("04051401458"), Err(PeselError::Checksum));
        assert_eq!(parse("11302845081"), Err(PeselError::Checksum));
    }

    #[test]
    fn a_valid_pesel_gives_birth_date_and_sex() {
        let p = parse(&make(date!(2011 - 10 - 28), 1233)).unwrap();
        assert_eq!(p.birth_date(), date!(2011 - 10 - 28));
        assert_eq!(p.sex(), Sex::Male); // digit 10 is 3 (odd)
        let p = parse(&make(date!(1985 - 02 - 01), 1240)).unwrap();
        assert_eq!(p.sex(), Sex::Female);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_but_inner_is_not() {
        let s = make(date!(1990 - 05 - 17), 5678);
        assert!(parse(&format!("  {s}\n")).is_ok());
        assert_eq!(
            parse(&format!("{} {}", &s[..5], &s[5..])),
            Err(PeselError::Format)
        );
    }

    #[test]
    fn format_is_checked_first() {
        for bad in [
            "",
            "1234567890",
            "123456789012",
            "1234567890a",
            "١٢٣٤٥٦٧٨٩٠١",
        ] {
            assert_eq!(parse(bad), Err(PeselError::Format), "{bad:?}");
        }
    }

    #[test]
    fn every_century_is_decoded() {
        for d in [
            date!(1850 - 03 - 04),
            date!(1950 - 03 - 04),
            date!(2020 - 03 - 04),
        ] {
            assert_eq!(parse(&make(d, 1)).unwrap().birth_date(), d);
        }
        // 2100s and 2200s are structurally valid but in the future today.
        assert_eq!(
            parse(&make(date!(2150 - 01 - 01), 1)),
            Err(PeselError::Date)
        );
        assert_eq!(
            parse(&make(date!(2250 - 01 - 01), 1)),
            Err(PeselError::Date)
        );
        let far_future = date!(2260 - 01 - 01);
        let p = Pesel::parse(&make(date!(2250 - 12 - 31), 1), far_future).unwrap();
        assert_eq!(p.birth_date(), date!(2250 - 12 - 31));
        let p = Pesel::parse(&make(date!(2150 - 06 - 30), 1), far_future).unwrap();
        assert_eq!(p.birth_date(), date!(2150 - 06 - 30));
    }

    #[test]
    fn leap_years_are_respected() {
        assert!(parse(&make(date!(2000 - 02 - 29), 1)).is_ok());
        assert!(parse(&make(date!(1996 - 02 - 29), 1)).is_ok());
        // 1900 was not a leap year: month 02, day 29 of 1900.
        let mut digits: Vec<u8> = "0002290001".bytes().map(|b| b - b'0').collect();
        digits.push(checksum_digit(&digits));
        let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        assert_eq!(parse(&s), Err(PeselError::Date));
    }

    #[test]
    fn impossible_months_and_days_are_date_errors() {
        for first_ten in ["9013010001", "9001320001", "9004310001", "9000100001"] {
            let mut digits: Vec<u8> = first_ten.bytes().map(|b| b - b'0').collect();
            digits.push(checksum_digit(&digits));
            let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            assert_eq!(parse(&s), Err(PeselError::Date), "{first_ten}");
        }
    }

    #[test]
    fn today_is_allowed_tomorrow_is_not() {
        assert!(parse(&make(TODAY, 1)).is_ok());
        assert_eq!(
            parse(&make(TODAY.next_day().unwrap(), 1)),
            Err(PeselError::Date)
        );
    }

    #[test]
    fn debug_output_hides_the_number() {
        let s = make(date!(1990 - 05 - 17), 5678);
        let shown = format!("{:?}", parse(&s).unwrap());
        assert!(!shown.contains(&s[2..]), "{shown}");
    }

    fn any_past_date() -> impl Strategy<Value = Date> {
        (1800i32..=2026, 1u8..=12, 1u8..=31).prop_filter_map("real past date", |(y, m, d)| {
            let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
            (date <= TODAY).then_some(date)
        })
    }

    proptest! {
        #[test]
        fn every_generated_valid_pesel_parses(date in any_past_date(), serial in 0u16..10000) {
            let s = make(date, serial);
            let p = parse(&s).unwrap();
            prop_assert_eq!(p.birth_date(), date);
            prop_assert_eq!(p.digits(), s);
        }

        #[test]
        fn any_single_digit_change_is_rejected(
            date in any_past_date(), serial in 0u16..10000, pos in 0usize..11, delta in 1u8..10
        ) {
            let s = make(date, serial);
            let mut bytes = s.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&changed).is_err());
        }
    }
}
