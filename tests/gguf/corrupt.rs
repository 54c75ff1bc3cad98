//! Truncated and corrupted copies of the small fixture: clear errors, never a panic.

use std::path::Path;

use cllm4rec_pipe::gguf::{Gguf, GgufError};

use crate::small_gguf;

fn bytes() -> Vec<u8> {
    std::fs::read(small_gguf()).unwrap()
}

/// Byte offset of the first occurrence of `needle`.
fn find(haystack: &[u8], needle: &str) -> usize {
    (haystack.windows(needle.len()))
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("`{needle}` not in the fixture"))
}

fn open(bytes: Vec<u8>) -> Result<Gguf, GgufError> {
    Gguf::from_bytes(Path::new("corrupt.gguf"), bytes)
}

/// The error message of opening `bytes`, which must fail as malformed at byte `offset`
/// (when given).
fn malformed(bytes: Vec<u8>, offset: Option<u64>) -> String {
    match open(bytes) {
        Ok(_) => panic!("a corrupt file opened"),
        Err(e @ GgufError::Malformed { offset: at, .. }) => {
            if let Some(o) = offset {
                assert_eq!(at, o, "{e}");
            }
            let msg = e.to_string();
            assert!(msg.starts_with("GGUF file `corrupt.gguf`, byte "), "{msg}");
            msg
        }
        Err(e) => panic!("not a format error: {e}"),
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_truncation_is_an_error_naming_the_offset() {
    let full = bytes();
    let g = open(full.clone()).unwrap();
    // The file may end anywhere after the last tensor's data (the rest is padding).
    let data_end = (g.tensors().iter())
        .map(|t| g.data_offset() + t.offset as usize + t.n_bytes())
        .max()
        .unwrap();
    assert!(data_end < full.len());
    for cut in 0..full.len() {
        match open(full[..cut].to_vec()) {
            Ok(_) => assert!(cut >= data_end, "cut at {cut} opened"),
            Err(GgufError::Malformed {
                offset,
                ref what,
                ref problem,
                ..
            }) => {
                assert!(cut < data_end, "cut at {cut}: {what}: {problem}");
                assert!(offset <= cut as u64, "cut at {cut}: error at {offset}");
                assert!(
                    problem.contains("past the end of the file") || problem.contains("cannot fit"),
                    "cut at {cut}: {what}: {problem}"
                );
            }
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
}

#[test]
fn a_huge_string_length_names_the_key() {
    let mut b = bytes();
    // The first key's length field is at 24, after magic, version and the two counts.
    put_u64(&mut b, 24, 9_000_000_000_000_000_000);
    let msg = malformed(b, Some(24));
    assert!(
        msg.contains("metadata key 0: string length 9000000000000000000 runs past"),
        "{msg}"
    );

    let mut b = bytes();
    let at = find(&b, "test.string") + "test.string".len() + 4; // after the value type
    put_u64(&mut b, at, u64::MAX);
    let msg = malformed(b, Some(at as u64));
    assert!(
        msg.contains("metadata key 14 `test.string`: string length"),
        "{msg}"
    );
}

#[test]
fn a_huge_array_length_is_refused_before_allocating() {
    let mut b = bytes();
    let key = "test.array_string";
    let at = find(&b, key) + key.len() + 8; // after the value and element types
    put_u64(&mut b, at, 1 << 60);
    let msg = malformed(b, Some(at as u64));
    assert!(
        msg.contains(&format!(
            "`{key}`: array of {} string values runs past",
            1u64 << 60
        )),
        "{msg}"
    );

    let mut b = bytes();
    let key = "test.array_nested";
    // The second inner array's length: outer types and length, then [1, 2] (4 + 8 + 8).
    let at = find(&b, key) + key.len() + 16 + 20 + 4;
    put_u64(&mut b, at, u64::MAX / 2);
    let msg = malformed(b, Some(at as u64));
    assert!(
        msg.contains(&format!("`{key}`, element 1: array of")),
        "{msg}"
    );
}

#[test]
fn huge_counts_are_refused() {
    let mut b = bytes();
    put_u64(&mut b, 8, u64::MAX);
    assert!(malformed(b, Some(8)).contains("tensor count 18446744073709551615 cannot fit"));
    let mut b = bytes();
    put_u64(&mut b, 16, 1 << 40);
    assert!(malformed(b, Some(16)).contains("metadata key count 1099511627776 cannot fit"));
}

#[test]
fn bad_headers_say_what_is_wrong() {
    let mut b = bytes();
    b[0] = b'X';
    assert!(malformed(b, Some(0)).contains("not a GGUF file"));
    let mut b = bytes();
    put_u32(&mut b, 4, 1);
    assert!(malformed(b, Some(4)).contains("GGUF version 1 is not supported"));
    let mut b = bytes();
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(malformed(b, Some(4)).contains("big-endian"));
    let mut b = bytes();
    put_u32(&mut b, 4, 4);
    assert!(malformed(b, Some(4)).contains("unknown GGUF version 4"));
    // Version 2 has the same layout.
    let mut b = bytes();
    put_u32(&mut b, 4, 2);
    assert_eq!(open(b).unwrap().version(), 2);
}

#[test]
fn bad_values_name_the_key() {
    let mut b = bytes();
    let key = "test.bool_true";
    let at = find(&b, key) + key.len();
    b[at + 4] = 2;
    let msg = malformed(b.clone(), Some(at as u64 + 4));
    assert!(msg.contains(&format!("`{key}`: bool byte is 2")), "{msg}");
    put_u32(&mut b, at, 13);
    let msg = malformed(b, Some(at as u64));
    assert!(
        msg.contains(&format!("`{key}`: unknown value type 13")),
        "{msg}"
    );

    let mut b = bytes();
    let key = "test.string";
    let at = find(&b, key) + key.len() + 12; // the string's first byte
    b[at] = 0xff;
    assert!(malformed(b, Some(at as u64)).contains("not valid UTF-8"));

    let mut b = bytes();
    let key = "general.alignment";
    let at = find(&b, key) + key.len() + 4;
    put_u32(&mut b, at, 48);
    assert!(malformed(b, None).contains("power of two"));

    let mut b = bytes();
    let at = find(&b, "test.uint32");
    b[at..at + 11].copy_from_slice(b"test.uint16");
    let msg = malformed(b, Some(at as u64 - 8));
    assert!(
        msg.contains("metadata key 6 `test.uint16`: duplicate key (also key 4)"),
        "{msg}"
    );
}

/// Offsets of tensor `name`'s info fields: (n_dims, dims[0], type, offset).
fn tensor_fields(b: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let n_dims = find(b, name) + name.len();
    let dims = n_dims + 4;
    let n = u32::from_le_bytes(b[n_dims..n_dims + 4].try_into().unwrap()) as usize;
    let ty = dims + 8 * n;
    (n_dims, dims, ty, ty + 4)
}

#[test]
fn bad_tensor_infos_name_the_tensor() {
    let b0 = bytes();
    let (n_dims, dims, ty, offset) = tensor_fields(&b0, "t.q4_0");

    let mut b = b0.clone();
    put_u32(&mut b, n_dims, 5);
    assert!(malformed(b, Some(n_dims as u64)).contains("`t.q4_0`: 5 dimensions"));

    let mut b = b0.clone();
    put_u64(&mut b, dims, 48);
    let msg = malformed(b, Some(n_dims as u64));
    assert!(
        msg.contains(
            "`t.q4_0`: the innermost dimension 48 is not a multiple of the Q4_0 block size 32"
        ),
        "{msg}"
    );

    let mut b = b0.clone();
    put_u64(&mut b, dims + 8, u64::MAX / 4);
    assert!(malformed(b, Some(n_dims as u64)).contains("overflows"));

    let mut b = b0.clone();
    put_u64(&mut b, dims + 8, 1 << 40);
    let msg = malformed(b, Some(offset as u64));
    assert!(
        msg.contains("`t.q4_0`") && msg.contains("run past the end of the file"),
        "{msg}"
    );

    let mut b = b0.clone();
    put_u32(&mut b, ty, 99);
    assert!(malformed(b, Some(ty as u64)).contains("`t.q4_0`: unknown ggml type 99"));

    let mut b = b0.clone();
    put_u64(&mut b, offset, 1 << 62);
    assert!(malformed(b, Some(offset as u64)).contains("run past the end of the file"));

    let mut b = b0.clone();
    put_u64(&mut b, offset, 448 + 32);
    assert!(malformed(b, Some(offset as u64)).contains("not a multiple of the alignment 64"));

    let mut b = b0.clone();
    let at = find(&b, "t.q4_1");
    b[at..at + 6].copy_from_slice(b"t.q4_0");
    assert!(malformed(b, Some(at as u64 - 8)).contains("duplicate tensor name"));
}

#[test]
fn random_byte_corruption_never_panics() {
    let b0 = bytes();
    let g = open(b0.clone()).unwrap();
    let header_end = g.data_offset();
    // Every header byte set to a few values; whatever opens must also de-quantize (or refuse)
    // without a panic.
    for at in 0..header_end {
        for v in [0x00, 0x01, 0x7f, 0xff, b0[at] ^ 0x10] {
            let mut b = b0.clone();
            b[at] = v;
            if let Ok(g) = open(b) {
                for t in g.tensors() {
                    let _ = g.dequantize(&t.name);
                }
            }
        }
    }
}

#[test]
fn a_missing_file_names_it() {
    let e = Gguf::open(Path::new("/no/such/model.gguf")).unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }));
    assert!(e.to_string().contains("`/no/such/model.gguf`"), "{e}");
}
