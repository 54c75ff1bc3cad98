//! Line-by-line reading of plain or gzip files (detected by their magic bytes), with line
//! numbers for error messages.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::data::error::DataError;

pub struct Lines {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    line: u64,
    buf: Vec<u8>,
}

/// Open `path`, transparently decompressing gzip.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, DataError> {
    let mut f = File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    let f = File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, f))
    })
}

impl Lines {
    pub fn open(path: &Path) -> Result<Lines, DataError> {
        Ok(Lines {
            path: path.to_owned(),
            reader: open(path)?,
            line: 0,
            buf: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line without its line ending, and its 1-based number. Invalid UTF-8 is an
    /// error unless `lossy` (for latin-1 files such as ml-100k's u.item).
    pub fn next_line(&mut self, lossy: bool) -> Result<Option<(u64, String)>, DataError> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| {
            DataError::line(
                &self.path,
                self.line + 1,
                format!("cannot read (corrupt or truncated file?): {e}"),
            )
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let text = if lossy {
            // latin-1: every byte is one code point
            self.buf.iter().map(|&b| b as char).collect()
        } else {
            String::from_utf8(std::mem::take(&mut self.buf))
                .map_err(|_| DataError::line(&self.path, self.line, "not valid UTF-8"))?
        };
        Ok(Some((self.line, text)))
    }
}

/// The first of `names` that exists in `dir`, with or without a `.gz` suffix.
pub fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
        .find(|p| p.is_file())
}
