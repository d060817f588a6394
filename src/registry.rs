//! The population registry as CSV (API.md, "Registry CSV"): parsing as a
//! stream with per-line errors, conversion to keyed hashes, the streaming
//! import into a [`Store`] (`census-login registry import` and the start-up
//! seed alike), and the synthetic generator behind `registry generate`.

use crate::domain::pesel::checksum_digit;
use crate::domain::{MaidenName, Pesel};
use crate::keys::Keys;
use crate::store::{RegistryCounts, RegistryRecord, Store, StoreError, layout};
use futures::StreamExt;
use rand::{Rng, RngExt, SeedableRng};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
            maiden_tag: keys.maiden_tag(&self.maiden_name),
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
    #[error("cannot read the registry: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The rows of a registry CSV, one at a time: memory stays flat whatever the
/// size of the file.
pub struct Rows<R: Read> {
    reader: csv::Reader<R>,
    record: csv::StringRecord,
    columns: (usize, usize, Option<usize>),
    today: time::Date,
}

impl<R: Read> Rows<R> {
    /// Reads the header. PESEL birth dates are judged against `today` (in Poland).
    pub fn new(input: R, today: time::Date) -> Result<Self, RegistryError> {
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
        Ok(Self {
            reader,
            record: csv::StringRecord::new(),
            columns: (p_col, n_col, col("reserved")),
            today,
        })
    }

    /// The next row, good or bad; `Ok(None)` at the end. Only a failure to
    /// read the input is an error.
    pub fn next_row(&mut self) -> Result<Option<Result<RegistryRow, BadRow>>, RegistryError> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(self.judge())),
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    let csv::ErrorKind::Io(io) = e.into_kind() else {
                        unreachable!()
                    };
                    return Err(RegistryError::Read(io));
                }
                let line = e.position().map_or(0, |p| p.line());
                Ok(Some(Err(BadRow {
                    line,
                    reason: e.to_string(),
                })))
            }
        }
    }

    fn judge(&self) -> Result<RegistryRow, BadRow> {
        let record = &self.record;
        let (p_col, n_col, r_col) = self.columns;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        let pesel = Pesel::parse(field(p_col), self.today);
        let name = MaidenName::parse(field(n_col));
        let reserved = match r_col.map(field).unwrap_or("") {
            "" | "false" => Ok(false),
            "true" => Ok(true),
            // The value is not quoted back: in a shifted row it is a maiden name
            // or a PESEL, and the report goes to the operator's terminal and logs.
            _ => Err("reserved must be true, false or empty".to_owned()),
        };
        match (pesel, name, reserved) {
            (Ok(pesel), Ok(maiden_name), Ok(reserved)) => Ok(RegistryRow {
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
                Err(BadRow {
                    line,
                    reason: reasons.join(", "),
                })
            }
        }
    }
}

/// Parses a whole registry CSV: good rows, and bad rows with their line
/// numbers (tests and the fuzz target; the import streams with [`Rows`]).
pub fn parse(
    input: impl Read,
    today: time::Date,
) -> Result<(Vec<RegistryRow>, Vec<BadRow>), RegistryError> {
    let mut rows = Rows::new(input, today)?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next_row()? {
        match row {
            Ok(r) => good.push(r),
            Err(b) => bad.push(b),
        }
    }
    Ok((good, bad))
}

/// Rows per upsert (two scripts of 1,000 rows on Redis).
pub const IMPORT_BATCH: usize = 2000;
/// Rows read, hashed and sorted by registry bucket before they are sent
/// (~13 MB): at 2 M people a window brings ~8 rows per bucket, which the
/// upsert script handles with one read and one write (see
/// `lua/registry_upsert.lua`). The next window is read while this one is sent.
pub const IMPORT_WINDOW: usize = 1 << 19;
/// Upserts in flight at once: enough to keep Redis busy while the next
/// batch is hashed and on the wire.
const IN_FLIGHT: usize = 4;
/// Bad rows kept for the report (all are counted).
pub const BAD_ROWS_LISTED: usize = 100;

/// Where an import stands, for progress output.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportProgress {
    /// Rows read so far (good and bad), and bytes of input read.
    pub rows: u64,
    pub bytes: u64,
    pub counts: RegistryCounts,
    pub rejected: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub counts: RegistryCounts,
    pub rejected: u64,
    /// The first [`BAD_ROWS_LISTED`] bad rows.
    pub bad: Vec<BadRow>,
}

struct Batch {
    records: Vec<RegistryRecord>,
    bad: Vec<BadRow>,
    rows: u64,
}

/// Counts the bytes read, for progress by file size.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The order that puts the rows of one registry bucket next to each other
/// whatever a tag's bucket count: by Cluster slot (so that a batch needs few
/// script calls on a Cluster, one per slot), tag, then the bit-reversed byte
/// whose low bits are the bucket index (`crate::store::layout`).
fn bucket_order(r: &RegistryRecord) -> (u16, u8, u8, u8) {
    let k = r.key.as_bytes();
    (layout::tag_slot(&r.key), k[0], k[1], k[3].reverse_bits())
}

/// Streams a registry CSV into `store`: a thread reads and hashes rows into
/// windows of [`IMPORT_WINDOW`] (never the whole file) sorted by bucket, and
/// upserts of [`IMPORT_BATCH`] rows go out with up to [`IN_FLIGHT`] in flight
/// while the next window is read. Re-running it is harmless (an upsert of the
/// same row is `unchanged`), so an interrupted import is simply run again.
/// `progress` is told after every batch.
pub async fn import<R: Read + Send + 'static>(
    input: R,
    today: time::Date,
    keys: Arc<Keys>,
    store: Arc<dyn Store>,
    mut progress: impl FnMut(&ImportProgress),
) -> Result<ImportReport, RegistryError> {
    let bytes = Arc::new(AtomicU64::new(0));
    let input = Counting {
        inner: std::io::BufReader::with_capacity(1 << 16, input),
        read: bytes.clone(),
    };
    // One window waits while one is sent and one is read: memory stays at
    // about three windows.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<Batch>, RegistryError>>(1);
    let (header_tx, header_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::Builder::new()
        .name("registry-reader".into())
        .spawn(move || {
            let mut rows = match Rows::new(input, today) {
                Ok(r) => {
                    let _ = header_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = header_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let mut records = Vec::with_capacity(IMPORT_WINDOW);
                let (mut bad, mut read) = (Vec::new(), 0u64);
                let mut end = false;
                while records.len() < IMPORT_WINDOW {
                    match rows.next_row() {
                        Ok(Some(Ok(row))) => records.push(row.to_record(&keys)),
                        Ok(Some(Err(b))) => bad.push(b),
                        Ok(None) => {
                            end = true;
                            break;
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                    read += 1;
                }
                records.sort_by_cached_key(bucket_order);
                let mut batches: Vec<Batch> = records
                    .chunks(IMPORT_BATCH)
                    .map(|c| Batch {
                        records: c.to_vec(),
                        bad: Vec::new(),
                        rows: c.len() as u64,
                    })
                    .collect();
                drop(records);
                if read > 0 {
                    if batches.is_empty() {
                        batches.push(Batch {
                            records: Vec::new(),
                            bad: Vec::new(),
                            rows: 0,
                        });
                    }
                    let last = batches.last_mut().expect("one batch at least");
                    last.rows += bad.len() as u64;
                    last.bad = bad;
                    if tx.blocking_send(Ok(batches)).is_err() {
                        return;
                    }
                }
                if end {
                    return;
                }
            }
        })
        .map_err(RegistryError::Read)?;
    header_rx
        .await
        .unwrap_or_else(|_| Err(RegistryError::Read(std::io::Error::other("reader stopped"))))?;

    let windows =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) });
    let batches = windows.flat_map(|window| {
        let batches: Vec<Result<Batch, RegistryError>> = match window {
            Ok(batches) => batches.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(batches)
    });
    let mut upserts = std::pin::pin!(
        batches
            .map(|batch| {
                let store = store.clone();
                async move {
                    let batch = batch?;
                    let counts = store.upsert_registry(&batch.records).await?;
                    Ok::<_, RegistryError>((counts, batch))
                }
            })
            .buffered(IN_FLIGHT)
    );
    let mut report = ImportReport::default();
    let mut seen = ImportProgress::default();
    while let Some(done) = upserts.next().await {
        // Dropping the stream on error closes the channel and stops the reader.
        let (counts, batch) = done?;
        report.counts += counts;
        report.rejected += batch.bad.len() as u64;
        let room = BAD_ROWS_LISTED.saturating_sub(report.bad.len());
        report.bad.extend(batch.bad.into_iter().take(room));
        seen.rows += batch.rows;
        seen.bytes = bytes.load(Ordering::Relaxed);
        seen.counts = report.counts;
        seen.rejected = report.rejected;
        progress(&seen);
    }
    let _ = reader.join();
    Ok(report)
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
fn birth_year(rng: &mut impl Rng) -> u32 {
    match rng.random_range(0..100) {
        0..=4 => rng.random_range(1925..1940),
        5..=24 => rng.random_range(1940..1960),
        25..=64 => rng.random_range(1960..1990),
        65..=84 => rng.random_range(1990..2005),
        _ => rng.random_range(2005..2021),
    }
}

/// A random valid PESEL as its 11 ASCII digits.
fn generate_pesel(rng: &mut impl Rng) -> [u8; 11] {
    let year = birth_year(rng);
    let month = rng.random_range(1..=12u32) + if year >= 2000 { 20 } else { 0 };
    let day = rng.random_range(1..=28u32);
    let serial = rng.random_range(0..10_000u32);
    let mut d = [0u8; 11];
    let parts = [year % 100, month, day];
    for (i, v) in parts.iter().enumerate() {
        d[2 * i] = (v / 10) as u8;
        d[2 * i + 1] = (v % 10) as u8;
    }
    for (i, p) in [1000, 100, 10, 1].iter().enumerate() {
        d[6 + i] = ((serial / p) % 10) as u8;
    }
    d[10] = checksum_digit(&d[..10]);
    d.map(|x| x + b'0')
}

/// Writes `count` synthetic people (distinct valid PESELs, Polish surnames,
/// about 1% reserved) as registry CSV. The same seed gives the same file.
/// No allocation per row (over 1 M rows a second into a buffered file).
pub fn generate(count: usize, seed: u64, out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut seen: HashSet<u64> = HashSet::with_capacity(count);
    out.write_all(b"pesel,mother_maiden_name,reserved\n")?;
    let mut line = Vec::with_capacity(64);
    while seen.len() < count {
        let pesel = generate_pesel(&mut rng);
        let number = pesel.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if !seen.insert(number) {
            continue;
        }
        let name = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let reserved = rng.random_range(0..100) == 0;
        line.clear();
        line.extend_from_slice(&pesel);
        line.push(b',');
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(if reserved { b",true\n" } else { b",false\n" });
        out.write_all(&line)?;
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
