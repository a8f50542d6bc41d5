//! The record format of the prompt journal, pure and independent of I/O.

use common::RunId;

use super::JournalError;

const HEADER_PREFIX: &str = "=== prompt run=";

/// Where a run's record sits in the journal, and what it must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// Byte offset of the record's first byte.
    pub offset: u64,
    /// Length of the whole record, header and footer included.
    pub len: u64,
    /// CRC-32 (IEEE) of the prompt bytes.
    pub crc32: u32,
}

/// Encodes one record: header line, the prompt bytes, footer line.
pub fn encode_record(run_id: RunId, prompt: &str) -> (Vec<u8>, u32) {
    let crc = crc32fast::hash(prompt.as_bytes());
    let header = format!("{HEADER_PREFIX}{run_id} bytes={} crc32={crc:08x} ===\n", prompt.len());
    let footer = format!("\n=== end run={run_id} ===\n");
    let mut record = Vec::with_capacity(header.len() + prompt.len() + footer.len());
    record.extend_from_slice(header.as_bytes());
    record.extend_from_slice(prompt.as_bytes());
    record.extend_from_slice(footer.as_bytes());
    (record, crc)
}

/// Parsed header fields.
struct Header {
    run_id: RunId,
    bytes: usize,
    crc32: u32,
    header_len: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let line_end = bytes.iter().position(|&b| b == b'\n').ok_or("header line is incomplete")?;
    let line = std::str::from_utf8(&bytes[..line_end]).map_err(|_| "header is not UTF-8")?;
    let rest = line.strip_prefix(HEADER_PREFIX).ok_or("record does not start with a header")?;
    let rest = rest.strip_suffix(" ===").ok_or("header is not terminated")?;
    let mut fields = rest.split(' ');
    let run_id = fields.next().and_then(|id| id.parse().ok()).ok_or("header has no valid run id")?;
    let bytes_field = fields
        .next()
        .and_then(|f| f.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .ok_or("header has no valid length")?;
    let crc32 = fields
        .next()
        .and_then(|f| f.strip_prefix("crc32="))
        .and_then(|n| u32::from_str_radix(n, 16).ok())
        .ok_or("header has no valid checksum")?;
    Ok(Header { run_id, bytes: bytes_field, crc32, header_len: line_end + 1 })
}

/// Decodes the record that must start at `bytes[0]`; returns its run, prompt and total length.
fn decode_at(bytes: &[u8]) -> Result<(RunId, String, usize), String> {
    let header = parse_header(bytes)?;
    let prompt_end = header.header_len.checked_add(header.bytes).ok_or("length overflows")?;
    let prompt = bytes.get(header.header_len..prompt_end).ok_or("record is torn: prompt is incomplete")?;
    if crc32fast::hash(prompt) != header.crc32 {
        return Err("checksum mismatch".into());
    }
    let footer = format!("\n=== end run={} ===\n", header.run_id);
    let record_end = prompt_end + footer.len();
    if bytes.get(prompt_end..record_end) != Some(footer.as_bytes()) {
        return Err("record is torn: footer is missing".into());
    }
    let prompt = String::from_utf8(prompt.to_vec()).map_err(|_| "prompt is not UTF-8")?;
    Ok((header.run_id, prompt, record_end))
}

/// Decodes exactly the record `expected` points at, checking it belongs to `run_id`.
pub fn decode_record(run_id: RunId, expected: RecordRef, bytes: &[u8]) -> Result<String, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { run_id, reason };
    let (found, prompt, len) = decode_at(bytes).map_err(corrupt)?;
    if found != run_id {
        return Err(corrupt(format!("record belongs to run {found}")));
    }
    if len as u64 != expected.len {
        return Err(corrupt(format!("record is {len} bytes, expected {}", expected.len)));
    }
    if crc32fast::hash(prompt.as_bytes()) != expected.crc32 {
        return Err(corrupt("checksum differs from the one stored with the run".into()));
    }
    Ok(prompt)
}

/// A record found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannedRecord {
    /// An intact record.
    Intact { run_id: RunId, offset: u64, prompt: String },
    /// A header whose record is incomplete or damaged (a crash mid-write leaves one at the end).
    Torn {
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads every record of a journal's bytes, skipping text that is not a record (such as the
/// sample prompt the file starts with).
pub fn scan(bytes: &[u8]) -> Vec<ScannedRecord> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let at_line_start = pos == 0 || bytes[pos - 1] == b'\n';
        if at_line_start && bytes[pos..].starts_with(HEADER_PREFIX.as_bytes()) {
            match decode_at(&bytes[pos..]) {
                Ok((run_id, prompt, len)) => {
                    records.push(ScannedRecord::Intact { run_id, offset: pos as u64, prompt });
                    pos += len;
                    continue;
                }
                Err(reason) => records.push(ScannedRecord::Torn { offset: pos as u64, reason }),
            }
        }
        pos += bytes[pos..].iter().position(|&b| b == b'\n').map_or(bytes.len() - pos, |i| i + 1);
    }
    records
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn run(n: u128) -> RunId {
        RunId(Uuid::from_u128(n))
    }

    fn reference(record: &[u8], crc32: u32) -> RecordRef {
        RecordRef { offset: 0, len: record.len() as u64, crc32 }
    }

    #[test]
    fn a_record_reads_back_as_its_prompt() {
        let (record, crc) = encode_record(run(1), "line one\n=== end run=x ===\nline three");
        let prompt = decode_record(run(1), reference(&record, crc), &record).expect("intact");
        assert_eq!(prompt, "line one\n=== end run=x ===\nline three");
    }

    #[test]
    fn a_record_of_another_run_is_refused() {
        let (record, crc) = encode_record(run(1), "mine");
        let err = decode_record(run(2), reference(&record, crc), &record).expect_err("other run");
        assert!(err.to_string().contains("belongs to run"), "{err}");
    }

    #[test]
    fn a_torn_record_is_refused() {
        let (record, crc) = encode_record(run(1), "a prompt that is cut");
        for cut in [10, record.len() / 2, record.len() - 1] {
            assert!(decode_record(run(1), reference(&record, crc), &record[..cut]).is_err());
        }
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let (mut record, crc) = encode_record(run(1), "checksummed");
        let header_len = record.iter().position(|&b| b == b'\n').expect("header") + 1;
        record[header_len] ^= 0x20;
        let err = decode_record(run(1), reference(&record, crc), &record).expect_err("flipped");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn scan_skips_plain_text_and_reports_a_torn_tail() {
        let mut file = b"A sample prompt someone wrote by hand.\n".to_vec();
        let (first, _) = encode_record(run(1), "first");
        let (second, _) = encode_record(run(2), "second");
        file.extend_from_slice(&first);
        file.extend_from_slice(&second[..second.len() - 5]);
        let records = scan(&file);
        assert_eq!(records.len(), 2);
        assert!(
            matches!(&records[0], ScannedRecord::Intact { run_id, prompt, .. } if *run_id == run(1) && prompt == "first")
        );
        assert!(matches!(&records[1], ScannedRecord::Torn { .. }));
    }

    proptest! {
        #[test]
        fn any_prompt_round_trips(prompt in any::<String>(), id in any::<u128>()) {
            let (record, crc) = encode_record(run(id), &prompt);
            prop_assert_eq!(decode_record(run(id), reference(&record, crc), &record).ok(), Some(prompt));
        }

        #[test]
        fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = scan(&bytes);
        }
    }
}
