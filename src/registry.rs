//! The population registry as CSV (API.md, "Registry CSV"): parsing with
//! per-line errors, conversion to keyed hashes for storage, and the synthetic
//! generator behind `census-login registry generate`.

use crate::domain::pesel::checksum_digit;
use crate::domain::{MaidenName, Pesel};
use crate::keys::Keys;
use crate::store::RegistryRecord;
use rand::{Rng, RngExt, SeedableRng};
use std::collections::HashSet;
use std::io::{Read, Write};

/// The bundled demo registry of synthetic people.
pub const DEMO_REGISTRY: &str = include_str!("../config/demo-registry.csv");

pub struct RegistryRow {
    pub pesel: Pesel,
    pub maiden_name: MaidenName,
    pub reserved: bool,
}

impl RegistryRow {
    pub fn to_record(&self, keys: &Keys) -> RegistryRecord {
        RegistryRecord {
            key: keys.pesel_key(&self.pesel),
            maiden_hash: keys.maiden_hash(&self.maiden_name),
            reserved: self.reserved,
        }
    }
}

/// A row that could not be read, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry CSV header must contain pesel and mother_maiden_name")]
    Header,
    #[error("registry CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Reads a registry for storage: keyed records of the good rows, and the bad
/// rows with their line numbers. The one loader of the seed file at start-up
/// and of `census-login registry import`.
pub fn load(
    input: impl Read,
    today: time::Date,
    keys: &Keys,
) -> Result<(Vec<RegistryRecord>, Vec<BadRow>), RegistryError> {
    let (rows, bad) = parse(input, today)?;
    Ok((rows.iter().map(|r| r.to_record(keys)).collect(), bad))
}

/// Parses a registry CSV: good rows, and bad rows with their line numbers.
/// PESEL birth dates are judged against `today` (in Poland).
pub fn parse(
    input: impl Read,
    today: time::Date,
) -> Result<(Vec<RegistryRow>, Vec<BadRow>), RegistryError> {
    // Records end at LF only (a CRLF's CR is trimmed with the field): the csv
    // crate also ends one at a bare CR but counts lines by LF, so a row after a
    // bare CR was reported on the line before it (found by tests/fuzz).
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(p_col), Some(n_col)) = (col("pesel"), col("mother_maiden_name")) else {
        return Err(RegistryError::Header);
    };
    let r_col = col("reserved");
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        let pesel = Pesel::parse(field(p_col), today);
        let name = MaidenName::parse(field(n_col));
        let reserved = match r_col.map(field).unwrap_or("") {
            "" | "false" => Ok(false),
            "true" => Ok(true),
            // The value is not quoted back: in a shifted row it is a maiden name
            // or a PESEL, and the report goes to the operator's terminal and logs.
            _ => Err("reserved must be true, false or empty".to_owned()),
        };
        match (pesel, name, reserved) {
            (Ok(pesel), Ok(maiden_name), Ok(reserved)) => rows.push(RegistryRow {
                pesel,
                maiden_name,
                reserved,
            }),
            (pesel, name, reserved) => {
                let mut reasons = Vec::new();
                if let Err(e) = pesel {
                    reasons.push(e.code().to_owned());
                }
                if let Err(e) = name {
                    reasons.push(e.code().to_owned());
                }
                if let Err(e) = reserved {
                    reasons.push(e);
                }
                bad.push(BadRow {
                    line,
                    reason: reasons.join(", "),
                });
            }
        }
    }
    Ok((rows, bad))
}

/// Common Polish surnames in their feminine form, as a mother's maiden name is.
const SURNAMES: &[&str] = &[
    "Nowak",
    "Kowalska",
    "Wiśniewska",
    "Wójcik",
    "Kowalczyk",
    "Kamińska",
    "Lewandowska",
    "Zielińska",
    "Szymańska",
    "Woźniak",
    "Dąbrowska",
    "Kozłowska",
    "Jankowska",
    "Mazur",
    "Kwiatkowska",
    "Krawczyk",
    "Piotrowska",
    "Grabowska",
    "Nowakowska",
    "Pawłowska",
    "Michalska",
    "Nowicka",
    "Adamczyk",
    "Dudek",
    "Zając",
    "Wieczorek",
    "Jabłońska",
    "Król",
    "Majewska",
    "Olszewska",
    "Jaworska",
    "Wróbel",
    "Malinowska",
    "Pawlak",
    "Witkowska",
    "Walczak",
    "Stępień",
    "Górska",
    "Rutkowska",
    "Michalak",
    "Sikora",
    "Ostrowska",
    "Baran",
    "Duda",
    "Szewczyk",
    "Tomaszewska",
    "Pietrzak",
    "Marciniak",
    "Wróblewska",
    "Zalewska",
    "Jakubowska",
    "Jasińska",
    "Zawadzka",
    "Sadowska",
    "Bąk",
    "Chmielewska",
    "Włodarczyk",
    "Borkowska",
    "Czarnecka",
    "Sawicka",
    "Sokołowska",
    "Urbańska",
    "Kubiak",
    "Maciejewska",
    "Szczepańska",
    "Kucharska",
    "Wilk",
    "Kalinowska",
    "Lis",
    "Mazurek",
    "Wysocka",
    "Adamska",
    "Kaźmierczak",
    "Wojciechowska",
    "Sobczak",
    "Czerwińska",
    "Andrzejewska",
    "Cieślak",
    "Głowacka",
    "Zakrzewska",
    "Kołodziej",
    "Sikorska",
    "Krajewska",
    "Gajewska",
    "Szymczak",
    "Szulc",
    "Baranowska",
    "Laskowska",
    "Brzezińska",
    "Makowska",
    "Ziółkowska",
    "Przybylska",
    "Łukasiewicz",
    "Nowak-Kowalska",
    "Domańska",
    "Kaczmarek",
    "Żak",
    "Ślusarczyk",
    "Źrałek",
];

/// Birth years weighted roughly like the living population in 2021.
fn birth_year(rng: &mut impl Rng) -> i32 {
    match rng.random_range(0..100) {
        0..=4 => rng.random_range(1925..1940),
        5..=24 => rng.random_range(1940..1960),
        25..=64 => rng.random_range(1960..1990),
        65..=84 => rng.random_range(1990..2005),
        _ => rng.random_range(2005..2021),
    }
}

fn generate_pesel(rng: &mut impl Rng) -> String {
    let year = birth_year(rng);
    let month = rng.random_range(1..=12u8);
    let day = rng.random_range(1..=28u8);
    let offset = if year >= 2000 { 20 } else { 0 };
    let serial = rng.random_range(0..10_000u16);
    let first_ten = format!(
        "{:02}{:02}{:02}{:04}",
        year % 100,
        month + offset,
        day,
        serial
    );
    let digits: Vec<u8> = first_ten.bytes().map(|b| b - b'0').collect();
    format!("{first_ten}{}", checksum_digit(&digits))
}

/// Writes `count` synthetic people (distinct valid PESELs, Polish surnames,
/// about 1% reserved) as registry CSV. The same seed gives the same file.
pub fn generate(count: usize, seed: u64, out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::with_capacity(count);
    writeln!(out, "pesel,mother_maiden_name,reserved")?;
    while seen.len() < count {
        let pesel = generate_pesel(&mut rng);
        if !seen.insert(pesel.clone()) {
            continue;
        }
        let name = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let reserved = rng.random_range(0..100) == 0;
        writeln!(out, "{pesel},{name},{reserved}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::Clock;

    fn today() -> time::Date {
        crate::clock::SystemClock.poland_today()
    }

    #[test]
    fn the_demo_registry_is_all_good() {
        let (rows, bad) = parse(DEMO_REGISTRY.as_bytes(), today()).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert!(rows.len() >= 100);
        assert!(rows.iter().any(|r| r.reserved));
    }

    #[test]
    fn bad_rows_are_reported_with_line_numbers_and_good_ones_kept() {
        let csv = "pesel,mother_maiden_name,reserved\n\
                   04051401458,Nowak,false\n\
                   97071225308,Włodarczyk,\n\
                   97071225308,K0walska,maybe\n";
        let (rows, bad) = parse(csv.as_bytes(), today()).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].reserved);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].line, 2);
        assert!(bad[0].reason.contains("pesel_checksum"));
        assert_eq!(bad[1].line, 4);
        assert!(bad[1].reason.contains("mother_maiden_name_invalid"));
        assert!(bad[1].reason.contains("reserved"));
    }

    #[test]
    fn a_bad_row_is_reported_without_its_content() {
        // Found by tests/fuzz (registry_csv): a row shifted by one column put
        // the maiden name into `reserved`, and the reason quoted it.
        let csv = "pesel,mother_maiden_name,reserved\n\
                   x,97071225308,Włodarczyk\n";
        let (_, bad) = parse(csv.as_bytes(), today()).unwrap();
        assert_eq!(bad.len(), 1);
        assert!(!bad[0].reason.contains("Włodarczyk"), "{}", bad[0].reason);
        assert!(!bad[0].reason.contains("97071225308"), "{}", bad[0].reason);
    }

    #[test]
    fn line_numbers_count_line_feeds_and_crlf_files_parse_alike() {
        let lf = "pesel,mother_maiden_name,reserved\n97071225308,Nowak,true\nx,Nowak,\n";
        let crlf = lf.replace('\n', "\r\n");
        for csv in [lf, crlf.as_str()] {
            let (rows, bad) = parse(csv.as_bytes(), today()).unwrap();
            assert_eq!(rows.len(), 1);
            assert!(rows[0].reserved);
            assert_eq!(bad.len(), 1);
            assert_eq!(bad[0].line, 3);
        }
        // A bare CR inside a line is no line break: the row stays on line 2.
        let (_, bad) = parse("pesel,mother_maiden_name\n1\r2,Nowak\n".as_bytes(), today()).unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 2);
    }

    #[test]
    fn the_reserved_column_is_optional() {
        let (rows, bad) = parse(
            "pesel,mother_maiden_name\n97071225308,Nowak\n".as_bytes(),
            today(),
        )
        .unwrap();
        assert_eq!((rows.len(), bad.len()), (1, 0));
    }

    #[test]
    fn a_header_without_the_columns_is_refused() {
        assert!(matches!(
            parse("a,b\n1,2\n".as_bytes(), today()),
            Err(RegistryError::Header)
        ));
    }

    #[test]
    fn generated_registries_parse_and_repeat_with_the_seed() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate(2000, 7, &mut a).unwrap();
        generate(2000, 7, &mut b).unwrap();
        assert_eq!(a, b);
        let (rows, bad) = parse(a.as_slice(), today()).unwrap();
        assert!(bad.is_empty());
        assert_eq!(rows.len(), 2000);
        let reserved = rows.iter().filter(|r| r.reserved).count();
        assert!((5..=50).contains(&reserved), "{reserved}");
    }
}
