//! A bounds-checked little-endian reader over the bytes of a GGUF file.
//!
//! Every read checks the bytes left first and fails with a [`GgufError::Malformed`] naming
//! the file, the offset and what was being read, so that no length or count in the file can
//! cause a panic or an allocation larger than the file itself.

use std::path::Path;

use super::error::GgufError;

/// What is being read, built only when an error needs it.
pub(crate) type Ctx<'c> = &'c dyn Fn() -> String;

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], path: &'a Path) -> Self {
        Cursor {
            bytes,
            pos: 0,
            path,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A format error at byte `at`.
    pub(crate) fn error(&self, at: usize, ctx: Ctx, problem: String) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            offset: at as u64,
            what: ctx(),
            problem,
        }
    }

    /// The next `n` bytes of `field`.
    pub(crate) fn take(&mut self, n: u64, ctx: Ctx, field: &str) -> Result<&'a [u8], GgufError> {
        let left = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let out = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(out)
            }
            _ => Err(self.error(
                self.pos,
                ctx,
                format!("{field} of {n} bytes runs past the end of the file ({left} bytes left)"),
            )),
        }
    }

    fn array<const N: usize>(&mut self, ctx: Ctx, field: &str) -> Result<[u8; N], GgufError> {
        let b = self.take(N as u64, ctx, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, ctx: Ctx, field: &str) -> Result<u8, GgufError> {
        Ok(self.array::<1>(ctx, field)?[0])
    }

    pub(crate) fn u16(&mut self, ctx: Ctx, field: &str) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.array(ctx, field)?))
    }

    pub(crate) fn u32(&mut self, ctx: Ctx, field: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(ctx, field)?))
    }

    pub(crate) fn u64(&mut self, ctx: Ctx, field: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(ctx, field)?))
    }

    /// A GGUF string: a u64 byte length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, ctx: Ctx) -> Result<String, GgufError> {
        let len = self.u64(ctx, "string length")?;
        let left = self.remaining();
        if len > left as u64 {
            return Err(self.error(
                self.pos - 8,
                ctx,
                format!("string length {len} runs past the end of the file ({left} bytes left)"),
            ));
        }
        let start = self.pos;
        let bytes = self.take(len, ctx, "string")?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.error(
                start + e.valid_up_to(),
                ctx,
                format!(
                    "string is not valid UTF-8 (bad byte {} of {len})",
                    e.valid_up_to()
                ),
            )),
        }
    }
}
