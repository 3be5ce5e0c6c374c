//! IDX files (MNIST, Fashion-MNIST): a big-endian header — two zero bytes, a type byte (0x08 =
//! unsigned bytes), the number of dimensions — then each dimension as a u32, then the raw
//! bytes. Read gzip'd (`.gz`) or not. Every way a file can be wrong is an error that names it.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// An IDX array of unsigned bytes: its dimensions and data.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads `path`, or `path` + ".gz" when only that exists.
pub fn read(path: &Path, expected_dims: usize, hint: &str) -> Result<IdxArray, DataError> {
    let gz = path.with_file_name(format!(
        "{}.gz",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let (file, bytes) = match std::fs::read(path) {
        Ok(b) => (path.to_path_buf(), b),
        Err(_) => match std::fs::read(&gz) {
            Ok(b) => (gz.clone(), b),
            Err(_) => {
                return Err(DataError::Missing {
                    file: path.display().to_string(),
                    also: Some(gz.display().to_string()),
                    hint: hint.to_string(),
                });
            }
        },
    };
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Bad {
                file: file.display().to_string(),
                problem: format!("gzip data is damaged ({e})"),
                hint: hint.to_string(),
            })?;
        out
    } else {
        bytes
    };
    parse(&raw, expected_dims).map_err(|problem| DataError::Bad {
        file: file.display().to_string(),
        problem,
        hint: hint.to_string(),
    })
}

/// Parses an IDX byte buffer with `expected_dims` dimensions.
pub fn parse(raw: &[u8], expected_dims: usize) -> Result<IdxArray, String> {
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 {
        return Err(format!(
            "not an IDX file: it should start with 00 00 08 {expected_dims:02x}, found {:02x?}",
            &raw[..raw.len().min(4)]
        ));
    }
    if raw[2] != 0x08 {
        return Err(format!(
            "IDX type byte is {:#04x}; expected 0x08 (unsigned bytes)",
            raw[2]
        ));
    }
    let n = raw[3] as usize;
    if n != expected_dims {
        return Err(format!(
            "magic {:#010x} says {n} dimensions; expected {expected_dims} (magic {:#010x})",
            u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            0x800 + expected_dims
        ));
    }
    let header = 4 + 4 * n;
    if raw.len() < header {
        return Err(format!(
            "truncated header: {} bytes, need {header}",
            raw.len()
        ));
    }
    let dims: Vec<usize> = (0..n)
        .map(|i| {
            u32::from_be_bytes([
                raw[4 + 4 * i],
                raw[5 + 4 * i],
                raw[6 + 4 * i],
                raw[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let want: usize = dims.iter().product();
    let got = raw.len() - header;
    if got != want {
        return Err(format!(
            "dimensions {dims:?} need {want} data bytes, the file has {got} (truncated or padded)"
        ));
    }
    Ok(IdxArray {
        dims,
        data: raw[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_the_layout_and_names_every_defect() {
        let a = parse(
            &idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
            3,
        )
        .unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        assert!(
            parse(&idx(&[2, 2, 3], &[1, 2, 3]), 3)
                .unwrap_err()
                .contains("need 12 data bytes, the file has 3")
        );
        assert!(
            parse(&idx(&[4], &[1, 2, 3, 4]), 3)
                .unwrap_err()
                .contains("expected 3")
        );
        assert!(
            parse(b"PK\x03\x04", 1)
                .unwrap_err()
                .contains("not an IDX file")
        );
    }
}
