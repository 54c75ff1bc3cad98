//! Compact binary storage of tokenized documents (one file per corpus, little-endian):
//!
//! ```text
//! magic        8 bytes  "CLTOK001"
//! n_docs       u64
//! n_tokens     u64
//! offsets      u64 x (n_docs + 1)   document d is tokens[offsets[d]..offsets[d+1]]
//! prompt_len   u32 x n_docs         the first prompt_len tokens are the prompt, the rest the main text
//! user         i32 x n_docs         the document's user (-1: none)
//! item         i32 x n_docs         the document's item (-1: none)
//! tokens       u32 x n_tokens
//! ```

use std::io::{self, Read, Write};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"CLTOK001";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Corpus {
    pub offsets: Vec<u64>,
    pub prompt_len: Vec<u32>,
    pub user: Vec<i32>,
    pub item: Vec<i32>,
    pub tokens: Vec<u32>,
}

impl Corpus {
    pub fn new() -> Corpus {
        Corpus {
            offsets: vec![0],
            ..Default::default()
        }
    }

    pub fn push(&mut self, prompt: &[u32], main: &[u32], user: Option<u32>, item: Option<u32>) {
        self.tokens.extend_from_slice(prompt);
        self.tokens.extend_from_slice(main);
        self.offsets.push(self.tokens.len() as u64);
        self.prompt_len.push(prompt.len() as u32);
        self.user.push(user.map(|u| u as i32).unwrap_or(-1));
        self.item.push(item.map(|i| i as i32).unwrap_or(-1));
    }

    pub fn len(&self) -> usize {
        self.prompt_len.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompt_len.is_empty()
    }

    /// (prompt, main) of document d.
    pub fn doc(&self, d: usize) -> (&[u32], &[u32]) {
        let (a, b) = (self.offsets[d] as usize, self.offsets[d + 1] as usize);
        self.tokens[a..b].split_at(self.prompt_len[d] as usize)
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&(self.len() as u64).to_le_bytes())?;
        w.write_all(&(self.tokens.len() as u64).to_le_bytes())?;
        for x in &self.offsets {
            w.write_all(&x.to_le_bytes())?;
        }
        for x in &self.prompt_len {
            w.write_all(&x.to_le_bytes())?;
        }
        for x in self.user.iter().chain(&self.item) {
            w.write_all(&x.to_le_bytes())?;
        }
        let mut buf = Vec::with_capacity(self.tokens.len() * 4);
        for x in &self.tokens {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        w.write_all(&buf)
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut w = io::BufWriter::new(std::fs::File::create(path)?);
        self.write_to(&mut w)?;
        w.flush()
    }

    pub fn read(path: &Path) -> io::Result<Corpus> {
        let mut b = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut b)?;
        Self::parse(&b).map_err(|m| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {m}", path.display()),
            )
        })
    }

    pub fn parse(b: &[u8]) -> Result<Corpus, String> {
        if b.len() < 24 || &b[..8] != MAGIC {
            return Err("not a token file (bad magic)".into());
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (n, t) = (u64_at(8) as usize, u64_at(16) as usize);
        let need = 24 + 8 * (n + 1) + 4 * n * 3 + 4 * t;
        if b.len() != need {
            return Err(format!(
                "truncated or padded: {} bytes, expected {need}",
                b.len()
            ));
        }
        let mut at = 24;
        let mut take = |len: usize| {
            let s = &b[at..at + len];
            at += len;
            s
        };
        let offsets: Vec<u64> = take(8 * (n + 1))
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let prompt_len: Vec<u32> = take(4 * n)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let user: Vec<i32> = take(4 * n)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let item: Vec<i32> = take(4 * n)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let tokens: Vec<u32> = take(4 * t)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        if offsets.first() != Some(&0)
            || offsets.last() != Some(&(t as u64))
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err("offsets are not monotone from 0 to n_tokens".into());
        }
        Ok(Corpus {
            offsets,
            prompt_len,
            user,
            item,
            tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_layout() {
        let mut c = Corpus::new();
        c.push(&[1, 2], &[3], Some(0), None);
        c.push(&[4], &[], None, Some(7));
        let mut b = Vec::new();
        c.write_to(&mut b).unwrap();
        assert_eq!(&b[..8], MAGIC);
        assert_eq!(b.len(), 24 + 8 * 3 + 4 * 2 * 3 + 4 * 4);
        let back = Corpus::parse(&b).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.doc(0), (&[1u32, 2][..], &[3u32][..]));
        assert!(Corpus::parse(&b[..b.len() - 1])
            .unwrap_err()
            .contains("truncated"));
    }
}
